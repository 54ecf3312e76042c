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
