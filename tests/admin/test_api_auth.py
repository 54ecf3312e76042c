"""Who may call the admin API: only a bearer token NIXA issued to the admin console, for the
admin API's audience, alive, at substantial or higher, of a person holding a role."""

from __future__ import annotations

import time

import pytest

from admin.auth import ADMIN_SCOPE, CONSOLE_CLIENT_ID, admin_resource
from admin.roles import AdminRoles, Role
from connectors.base import ACR_BY_LEVEL, LevelOfAssurance
from tests.admin.operators import SUBSTANTIAL, console_browser, console_sign_in, new_operator, signed_in
from tests.conftest import form_action, hidden, register_client


@pytest.fixture(scope="module")
def support_op(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.SUPPORT)


def _me(http, token: str | None, scheme: str = "Bearer"):  # noqa: ANN001, ANN202
    return http.get("/admin/api/me", headers={"Authorization": f"{scheme} {token}"} if token is not None else {})


def test_a_console_sign_in_at_substantial_gives_a_working_admin_token(http, app, support_op):  # noqa: ANN001
    r = _me(http, support_op.token)
    assert r.status_code == 200, r.text
    assert r.json() == {"person_id": support_op.person_id, "roles": ["support"], "acr": SUBSTANTIAL}
    claims = app.state.nixa.tokens.validate_access_token(support_op.token).claims
    assert claims["aud"] == admin_resource(app.state.nixa.settings.issuer) and claims["scope"] == ADMIN_SCOPE


@pytest.mark.parametrize("token, scheme", [(None, "Bearer"), ("", "Bearer"), ("not.a.jwt", "Bearer"), ("abc", "Basic"),
                                           ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer")])
def test_no_or_malformed_token_is_401(http, token, scheme):  # noqa: ANN001
    r = _me(http, token, scheme)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith('Bearer realm="nixa-admin"'), r.text
    assert ("error=" in r.headers["www-authenticate"]) == (token is not None)  # RFC 6750 §3.1: no token, no error code
    assert r.json()["error"] in ("invalid_token", "invalid_request")


def test_an_expired_token_is_401(http, app, support_op):  # noqa: ANN001
    nixa = app.state.nixa
    claims = dict(nixa.tokens.validate_access_token(support_op.token).claims)
    claims.update(iat=int(time.time()) - 1200, exp=int(time.time()) - 600)
    expired = nixa.keys.sign(claims, nixa.settings.default_signing_alg, typ="at+jwt")  # our own key: only the expiry is wrong
    r = _me(http, expired)
    assert r.status_code == 401 and r.json()["error_description"] == "The access token expired"


def test_a_token_for_userinfo_is_not_one_for_the_admin_api(http, app):  # noqa: ANN001
    op = new_operator(app.state.nixa, Role.SUPER_ADMIN)
    tokens = console_sign_in(app, op, resource=False)  # no resource: audience UserInfo
    r = _me(http, tokens["access_token"])
    assert r.status_code == 401 and "audience" in r.json()["error_description"]
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200


def test_an_admin_audience_token_of_another_client_is_401(http, app):  # noqa: ANN001
    nixa = app.state.nixa
    op = new_operator(nixa, Role.SUPER_ADMIN)
    other = register_client(nixa, nixa_first_party=True, scope=f"openid {ADMIN_SCOPE}")
    token, _ = nixa.tokens.issue_access_token(client_id=other.client_id, sub="x", scope=ADMIN_SCOPE, grant_id=None, person_id=op.person_id,
                                              aud=admin_resource(nixa.settings.issuer), acr=SUBSTANTIAL)
    r = _me(http, token)
    assert r.status_code == 401 and "admin console" in r.json()["error_description"]


def test_a_revoked_token_is_401(http, app):  # noqa: ANN001
    op = signed_in(app, Role.AUDITOR)
    assert _me(http, op.token).status_code == 200
    r = http.post("/revoke", data={"token": op.token, "client_id": CONSOLE_CLIENT_ID})
    assert r.status_code == 200
    assert _me(http, op.token).status_code == 401


def test_a_low_level_token_is_403(http, app):  # noqa: ANN001
    nixa = app.state.nixa
    op = new_operator(nixa, Role.SUPER_ADMIN)
    low = ACR_BY_LEVEL[LevelOfAssurance.LOW]
    token, _ = nixa.tokens.issue_access_token(client_id=CONSOLE_CLIENT_ID, sub="x", scope=ADMIN_SCOPE, grant_id=None,
                                              person_id=op.person_id, aud=admin_resource(nixa.settings.issuer), acr=low)
    r = _me(http, token)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_user_authentication"
    assert f'acr_values="{SUBSTANTIAL}"' in r.headers["www-authenticate"]


def test_the_console_never_signs_anyone_in_below_substantial(app):  # noqa: ANN001
    """A password alone (low) does not finish the console's sign-in, even when low is asked for."""
    nixa = app.state.nixa
    op = new_operator(nixa, Role.SUPER_ADMIN)
    from tests.conftest import pkce_pair

    _, challenge = pkce_pair()
    with console_browser(app) as b:
        r = b.get("/authorize", params={"response_type": "code", "client_id": CONSOLE_CLIENT_ID, "scope": "openid admin",
                                        "redirect_uri": nixa.clients.get(CONSOLE_CLIENT_ID).metadata["redirect_uris"][0],
                                        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s",
                                        "acr_values": ACR_BY_LEVEL[LevelOfAssurance.LOW], "resource": admin_resource(nixa.settings.issuer)})
        rid = r.headers["location"]
        page = b.get(rid).text
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": op.username, "password": op.password})
        assert r.status_code == 303 and r.headers["location"] == rid  # back to the page: the second step is still owed
        assert 'action="' + rid + '/totp"' in b.get(rid).text


def test_no_role_is_403_and_a_revoked_role_is_gone_at_the_next_call(http, app):  # noqa: ANN001
    nixa = app.state.nixa
    op = signed_in(app, Role.CLIENT_ADMIN)
    assert http.get("/admin/api/clients", headers=op.headers()).status_code == 200
    AdminRoles(nixa.db).revoke(op.person_id, Role.CLIENT_ADMIN)
    r = http.get("/admin/api/clients", headers=op.headers())
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert _me(http, op.token).status_code == 403
