"""Browsers holding an SSO session of a person at a chosen level, for the account pages' tests."""

from __future__ import annotations

import secrets
import time

import pytest
from starlette.testclient import TestClient

from idp.login.session import csrf_token


class Account:
    """A browser holding an SSO session of `person_id` at `loa` (made directly: a local password
    only reaches low, and the tests have no substantial connector configured)."""

    def __init__(self, app, nixa, person_id: str, loa: int = 2, user_agent: str = "testclient", ip: str = "198.51.100.20") -> None:  # noqa: ANN001
        self.nixa = nixa
        self.client = TestClient(app, base_url="http://testserver", follow_redirects=False, headers={"user-agent": user_agent})
        self.cookie, self.session = nixa.sessions.establish(None, person_id=person_id, loa=loa, amr=["otp"], method="test",
                                                            user_agent=user_agent, ip=ip)
        self.browser_id = secrets.token_urlsafe(24)
        self.client.cookies.set("nixa_session", self.cookie)
        self.client.cookies.set("nixa_browser", self.browser_id)

    @property
    def csrf(self) -> str:
        return csrf_token(self.nixa.csrf_key, self.browser_id, f"account:{self.session.sid}")

    def page(self, path: str = "/account", **params):  # noqa: ANN201
        r = self.client.get(path, params=params)
        assert r.status_code == 200, (r.status_code, r.headers.get("location"), r.text[:500])
        return r

    def post(self, path: str, csrf: bool = True, **data):  # noqa: ANN201
        data.setdefault("csrf", self.csrf if csrf else "")
        return self.client.post(path, data=data)

    def age(self, seconds: float) -> None:
        """Make the session's authentications `seconds` old."""
        then = time.time() - seconds

        def change(s) -> None:  # noqa: ANN001
            s.auth_time = then
            s.auth_times = {k: then for k in s.auth_times}

        self.session = self.nixa.sessions.update(self.cookie, self.session, change)


@pytest.fixture()
def open_accounts(app, nixa):  # noqa: ANN001, ANN201
    made: list[Account] = []

    def make(person_id: str, **kw) -> Account:
        account = Account(app, nixa, person_id, **kw)
        made.append(account)
        return account

    yield make
    for account in made:
        account.client.close()
