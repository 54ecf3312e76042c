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
