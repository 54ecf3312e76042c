"""The SSO session: stepped up in place, rotated cookie, absolute lifetime."""

from __future__ import annotations

from idp.login.session import Sessions
from idp.store.ephemeral import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_step_up_keeps_the_sid_and_rotates_the_cookie() -> None:
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=100, clock=clock)
    cookie, first = sessions.establish(None, person_id="p1", loa=2, amr=["sms"], method="population")
    clock.now += 10
    new_cookie, stepped = sessions.establish(cookie, person_id="p1", loa=3, amr=["hwk"], method="certificate")
    assert stepped.sid == first.sid and stepped.loa == 3 and set(stepped.amr) == {"sms", "hwk"}
    assert new_cookie != cookie and sessions.load(cookie) is None and sessions.load(new_cookie) is not None
    other_cookie, other = sessions.establish(new_cookie, person_id="p2", loa=1, amr=["pwd"], method="local")
    assert other.sid != first.sid and sessions.load(new_cookie) is None  # another person: a new session


def test_activity_does_not_stretch_the_absolute_lifetime() -> None:
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=100, clock=clock)
    cookie, session = sessions.establish(None, person_id="p1", loa=1, amr=["pwd"], method="local")
    clock.now += 60
    sessions.add_client(cookie, session, "portal")  # activity at 60 s
    clock.now += 39
    assert sessions.load(cookie) is not None
    clock.now += 2  # 101 s after sign-in
    assert sessions.load(cookie) is None


def test_auth_time_is_kept_per_level() -> None:
    """A fresh password does not make a two-hour-old certificate sign-in fresh: max_age is judged
    against the authentication that reaches the level asked."""
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=100_000, clock=clock)
    cookie, session = sessions.establish(None, person_id="p1", loa=3, amr=["hwk"], method="certificate")
    high_at = clock.now
    clock.now += 7200
    _, session = sessions.establish(cookie, person_id="p1", loa=1, amr=["pwd"], method="local")
    assert session.loa == 3
    assert session.satisfying(1, 60, clock.now) == (1, clock.now)  # the fresh one, at its own level
    assert session.satisfying(3, 60, clock.now) is None  # high is two hours old
    assert session.satisfying(3, None, clock.now) == (3, high_at)
    assert session.satisfying(3, 60, clock.now, fresh_since=high_at) == (3, high_at)  # done for this request


def test_two_tabs_adding_their_app_at_once_both_land(nixa) -> None:  # noqa: ANN001
    """Compare-and-set on the session (both backends): of 20 concurrent updates none is lost."""
    import threading

    sessions = Sessions(nixa.store, nixa.settings.sso_session_ttl, nixa.clock)
    cookie, session = sessions.establish(None, person_id="p-tabs", loa=1, amr=["pwd"], method="local")
    start = threading.Barrier(20)

    def add(i: int) -> None:
        mine = sessions.load(cookie)
        start.wait()
        sessions.add_client(cookie, mine, f"portal-{i}")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert set(sessions.load(cookie).clients) == {f"portal-{i}" for i in range(20)}


def test_two_tabs_finishing_steps_at_once_lose_none(nixa) -> None:  # noqa: ANN001
    import secrets
    import threading

    from idp.login import flow

    pending = flow.Pending(rid=secrets.token_urlsafe(12), client_id="c", params={}, browser="b", required_loa=1, max_age=None,
                           prompts=[], created_at=nixa.clock())
    flow.save(nixa, pending)
    start = threading.Barrier(12)

    def step(i: int) -> None:
        mine = flow.load(nixa, pending.rid, "b")
        start.wait()
        flow.record_step(nixa, mine, method=f"m{i}", loa=1, person_id="p", at=float(i))

    threads = [threading.Thread(target=step, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(s["method"] for s in flow.load(nixa, pending.rid, "b").steps) == sorted(f"m{i}" for i in range(12))


def test_idle_lifetime_ends_an_unused_session_and_use_moves_it() -> None:
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=10_000, clock=clock, idle_ttl=600)
    cookie, _ = sessions.establish(None, person_id="p1", loa=1, amr=["pwd"], method="local")
    clock.now += 500
    assert sessions.touch(cookie, sessions.load(cookie)).last_seen == clock.now  # used at 500 s: idle deadline 1,100 s
    clock.now += 500
    assert sessions.load(cookie) is not None
    clock.now += 601
    assert sessions.load(cookie) is None  # unused for more than 600 s
    assert Sessions(sessions.store, 10_000, clock).load(cookie) is not None  # without an idle limit it would live on


def test_a_persons_sessions_are_listed_and_one_can_be_ended() -> None:
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=1000, clock=clock)
    first, a = sessions.establish(None, person_id="p1", loa=2, amr=["otp"], method="population", user_agent="UA-1", ip="192.0.2.1")
    second, b = sessions.establish(None, person_id="p1", loa=1, amr=["pwd"], method="local", user_agent="UA-2", ip="192.0.2.2")
    listed = {s.sid: s for _, s in sessions.person_sessions("p1")}
    assert set(listed) == {a.sid, b.sid} and listed[a.sid].user_agent == "UA-1" and listed[b.sid].ip == "192.0.2.2"
    assert sessions.end_sid("someone-else", a.sid) is None  # only the owner ends it
    assert sessions.end_sid("p1", a.sid).sid == a.sid
    assert sessions.load(first) is None and sessions.load(second) is not None


def test_knowing_a_sid_neither_signs_in_nor_signs_out() -> None:
    """Attacker: someone who learned a session's sid (it is in the cookie's first half, and the
    account page lists sids). Without the cookie's secret, a cookie made of that sid and any
    secret loads nothing, changes nothing and ends nothing; the owner's cookie still works."""
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=100, clock=clock)
    cookie, session = sessions.establish(None, person_id="p1", loa=2, amr=["sms"], method="population")
    sid, _, secret = cookie.partition(".")
    assert sid == session.sid and len(secret) >= 43
    for forged in (f"{sid}.", f"{sid}.{'A' * len(secret)}", f"{sid}.{secret[:-1]}", sid):
        assert sessions.load(forged) is None
        assert sessions.end(forged) is None
        sessions.add_client(forged, session, "intruder")
        new_cookie, other = sessions.establish(forged, person_id="p1", loa=3, amr=["hwk"], method="certificate")
        assert other.sid != session.sid  # not a step-up of the owner's session: a session of its own
        sessions.end(new_cookie)
    owner = sessions.load(cookie)
    assert owner is not None and owner.clients == [] and owner.loa == 2


def test_an_update_made_with_the_cookie_a_step_up_replaced_does_not_land() -> None:
    """Two tabs: one steps the session up (a new cookie, the same sid); the other still holds
    the old cookie and adds its app. The old cookie has no session any more and its update
    writes nothing over the stepped-up one."""
    clock = Clock()
    sessions = Sessions(MemoryStore(clock), ttl=100, clock=clock)
    old_cookie, session = sessions.establish(None, person_id="p1", loa=1, amr=["pwd"], method="local")
    stale = sessions.load(old_cookie)
    new_cookie, _ = sessions.establish(old_cookie, person_id="p1", loa=3, amr=["hwk"], method="certificate")
    sessions.add_client(old_cookie, stale, "late-tab")
    now = sessions.load(new_cookie)
    assert sessions.load(old_cookie) is None and now is not None and now.loa == 3 and "late-tab" not in now.clients


def test_a_session_of_the_earlier_form_lives_on_after_the_upgrade() -> None:
    """Sessions made before this version (the cookie a random value, the session under its
    SHA-256, the sid under `sid:`) still load, change, are listed and end, one by one or all
    at once: an upgrade signs nobody out, and "sign out everywhere" still reaches them."""
    import hashlib
    import secrets
    from dataclasses import asdict

    from idp.login.session import SsoSession

    clock = Clock()
    store = MemoryStore(clock)
    sessions = Sessions(store, ttl=100, clock=clock)

    def earlier(person_id: str) -> tuple[str, SsoSession]:
        cookie = secrets.token_urlsafe(32)
        digest = hashlib.sha256(cookie.encode()).hexdigest()
        session = SsoSession(sid=secrets.token_urlsafe(16), person_id=person_id, auth_time=clock.now, loa=2, amr=["sms"],
                             methods=["population"], created_at=clock.now, last_seen=clock.now, auth_times={"1": clock.now, "2": clock.now})
        store.put(f"sso:{digest}", asdict(session), 100)
        store.put(f"sid:{session.sid}", {"cookie_hash": digest, "person_id": person_id}, 100)
        store.sadd(f"person-sessions:{person_id}", session.sid, 100)
        return cookie, session

    cookie, old = earlier("p1")
    loaded = sessions.load(cookie)
    assert loaded is not None and loaded.sid == old.sid
    sessions.add_client(cookie, loaded, "portal")
    assert sessions.load(cookie).clients == ["portal"]
    new_cookie, _ = sessions.establish(None, person_id="p1", loa=1, amr=["pwd"], method="local")
    assert {s.sid for _, s in sessions.person_sessions("p1")} == {old.sid, sessions.load(new_cookie).sid}
    stepped_cookie, stepped = sessions.establish(cookie, person_id="p1", loa=3, amr=["hwk"], method="certificate")
    assert stepped.sid == old.sid and "." in stepped_cookie and sessions.load(cookie) is None  # now of the new form
    assert sessions.end_sid("p1", old.sid) is not None and sessions.load(stepped_cookie) is None
    other_cookie, other = earlier("p2")
    sessions.establish(None, person_id="p2", loa=1, amr=["pwd"], method="local")
    ended = sessions.end_all_of("p2")
    assert other.sid in {s.sid for s in ended} and len(ended) == 2
    assert sessions.load(other_cookie) is None and sessions.person_sessions("p2") == []
    assert store.get(f"sid:{other.sid}") is None
