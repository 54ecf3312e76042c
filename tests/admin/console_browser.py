"""An operator at the admin console, in a test client that keeps cookies: signed in the way a
real one is (the console's /login, NIXA's sign-in page with a password then an authenticator
code, the console's callback redeeming the code at /token)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.testclient import TestClient

from tests.admin.operators import Operator, console_browser
from tests.conftest import form_action, hidden

CONSOLE = "/admin/console"


def local(location: str) -> str:
    """A redirect's target as a path on the test server (the callback comes back absolute)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def sign_in(app, op: Operator, *, next_path: str = CONSOLE + "/", totp: bool = True) -> TestClient:  # noqa: ANN001
    """A console browser signed in as `op`; with `totp=False` the sign-in stops at the password
    (low), and the callback is never reached: the returned client holds no console session."""
    b = console_browser(app)
    b.__enter__()
    r = b.get(next_path)
    assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?"), (r.status_code, r.headers.get("location"))
    r = b.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"].startswith("/authorize?"), r.headers.get("location")
    r = b.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.text[:300]
    rid = r.headers["location"]
    page = b.get(rid).text
    r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": op.username, "password": op.password})
    assert r.status_code == 303 and r.headers["location"] == rid, r.text[:300]
    if not totp:
        return b
    page = b.get(rid).text
    r = b.post(form_action(page, "/totp"), data={"csrf": hidden(page, "csrf"), "code": op.code()})
    assert r.status_code == 303 and "/admin/console/callback?" in r.headers["location"], (r.status_code, r.headers.get("location"))
    r = b.get(local(r.headers["location"]))
    assert r.status_code == 303, r.text[:500]
    cookie = r.headers["set-cookie"].lower()  # the tokens stay on the server; the cookie only unseals them
    assert cookie.startswith("nixa_console=") and "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "eyj" not in cookie  # no JWT in it
    assert r.headers["location"] == next_path
    return b


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)
