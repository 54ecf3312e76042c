"""Operators of the admin API, signed in the way a real one is: a NIXA person with a password
and an authenticator app, through the admin console client's code flow (PKCE, resource = the
admin API, acr substantial: password then TOTP), holding the roles a test gives them."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass

import pyotp
from starlette.testclient import TestClient

from admin.auth import ADMIN_SCOPE, CONSOLE_CLIENT_ID, admin_resource, console_redirect_uris
from admin.roles import AdminRoles, Role
from connectors.base import ACR_BY_LEVEL, LevelOfAssurance
from idp.identity import factors
from tests.conftest import form_action, hidden, make_citizen, pkce_pair, query_of

SUBSTANTIAL = ACR_BY_LEVEL[LevelOfAssurance.SUBSTANTIAL]
_address = itertools.count(10)


@dataclass
class Operator:
    person_id: str
    username: str
    password: str
    totp_secret: str
    token: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def code(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


def console_browser(app) -> TestClient:  # noqa: ANN001
    """A browser at its own address (192.0.2.x, TEST-NET-1), so throttles of other tests stay apart."""
    return TestClient(app, base_url="http://testserver", follow_redirects=False, client=(f"192.0.2.{next(_address) % 250 + 1}", 50000))


def new_operator(nixa, *roles: Role) -> Operator:  # noqa: ANN001
    citizen = make_citizen(nixa, name=f"Cán bộ {secrets.token_hex(3)}")
    factors.start_totp(nixa, citizen.person_id)
    secret = factors.enrolment_secret(nixa, citizen.person_id)
    factors.confirm_totp(nixa, citizen.person_id, pyotp.TOTP(secret).at(time.time() - 30), ip="192.0.2.1", browser=None)
    for role in roles:
        AdminRoles(nixa.db).grant(citizen.person_id, role, by="test")
    return Operator(citizen.person_id, citizen.username, citizen.password, secret)


def console_sign_in(app, op: Operator, *, resource: bool = True) -> dict:  # noqa: ANN001
    """The console's code flow; returns the token response."""
    nixa = app.state.nixa
    verifier, challenge = pkce_pair()
    redirect = console_redirect_uris(nixa.settings)[0]
    params = {"response_type": "code", "client_id": CONSOLE_CLIENT_ID, "redirect_uri": redirect, "scope": f"openid {ADMIN_SCOPE}",
              "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
              "code_challenge_method": "S256", "acr_values": SUBSTANTIAL}
    if resource:
        params["resource"] = admin_resource(nixa.settings.issuer)
    with console_browser(app) as b:
        r = b.get("/authorize", params=params)
        assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.text[:300]
        rid = r.headers["location"]
        page = b.get(rid).text
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": op.username, "password": op.password})
        assert r.status_code == 303 and r.headers["location"] == rid, r.text[:300]
        page = b.get(rid).text
        r = b.post(form_action(page, "/totp"), data={"csrf": hidden(page, "csrf"), "code": op.code()})
        assert r.status_code == 303 and "code=" in r.headers["location"], (r.status_code, r.headers.get("location"), r.text[:300])
        code = query_of(r.headers["location"])["code"]
        tr = b.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                                    "code_verifier": verifier, "client_id": CONSOLE_CLIENT_ID})
    assert tr.status_code == 200, tr.text
    return tr.json()


def signed_in(app, *roles: Role) -> Operator:  # noqa: ANN001
    op = new_operator(app.state.nixa, *roles)
    op.token = console_sign_in(app, op)["access_token"]
    return op
