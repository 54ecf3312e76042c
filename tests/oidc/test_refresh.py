"""Refresh tokens: offline_access only, rotation, reuse revokes the grant, scope may narrow
but never widen, the ID token keeps auth_time (OIDC Core §12.2)."""

from __future__ import annotations

from joserfc import jwt

from tests.conftest import make_citizen, register_client
from tests.oidc.helpers import get_code, introspect, redeem, token_call, userinfo


def id_claims(nixa, token: str) -> dict:  # noqa: ANN001
    return jwt.decode(token, nixa.keys._view().verify_set, algorithms=["ES256", "RS256", "EdDSA"]).claims


def start(nixa, browser, http, scope: str = "openid profile email offline_access", **md):  # noqa: ANN001, ANN201
    client = register_client(nixa, **md)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen, scope=scope)
    r = redeem(http, client, code, verifier)
    assert r.status_code == 200, r.text
    return client, r.json()


def refresh(http, client, rt: str, **extra):  # noqa: ANN001, ANN201
    return token_call(http, client, grant_type="refresh_token", refresh_token=rt, **extra)


def test_rotation_returns_a_new_refresh_token(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    r = refresh(http, client, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"] and body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert r.headers["cache-control"] == "no-store"
    assert userinfo(http, body["access_token"]).status_code == 200
    r2 = refresh(http, client, body["refresh_token"])
    assert r2.status_code == 200


def test_reuse_of_rotated_token_revokes_the_whole_grant(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    new = refresh(http, client, tokens["refresh_token"]).json()
    reuse = refresh(http, client, tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # the rotated-to token dies too, and every access token of the grant
    r = refresh(http, client, new["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    for at in (tokens["access_token"], new["access_token"]):
        assert introspect(http, client, at).json() == {"active": False}
        assert userinfo(http, at).status_code == 401
    assert introspect(http, client, new["refresh_token"]).json() == {"active": False}


def test_no_refresh_token_without_offline_access(nixa, browser, http):
    client, tokens = start(nixa, browser, http, scope="openid profile")
    assert "refresh_token" not in tokens


def test_no_refresh_token_when_client_may_not_refresh(nixa, browser, http):
    client, tokens = start(nixa, browser, http, grant_types=["authorization_code"])
    assert "refresh_token" not in tokens
    r = refresh(http, client, "anything")
    assert r.status_code in (400, 401) and r.json()["error"] == "unauthorized_client"


def test_narrower_scope_allowed_wider_refused(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    r = refresh(http, client, tokens["refresh_token"], scope="openid profile")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["scope"].split()) == {"openid", "profile"}
    info = userinfo(http, body["access_token"]).json()
    assert "name" in info and "email" not in info
    # the grant keeps its full scope for the next refresh
    r = refresh(http, client, body["refresh_token"])
    assert r.status_code == 200 and "email" in r.json()["scope"].split()
    wider = refresh(http, client, r.json()["refresh_token"], scope="openid profile email phone")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_id_token_on_refresh_keeps_auth_time_and_sub(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    first = id_claims(nixa, tokens["id_token"])
    body = refresh(http, client, tokens["refresh_token"]).json()
    second = id_claims(nixa, body["id_token"])
    assert second["auth_time"] == first["auth_time"]
    assert second["sub"] == first["sub"] and second["aud"] == client.client_id
    assert second["acr"] == first["acr"]
    assert "nonce" not in second


def test_refresh_token_bound_to_client(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    other = register_client(nixa)
    r = refresh(http, other, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # still usable by its owner
    assert refresh(http, client, tokens["refresh_token"]).status_code == 200


def test_garbage_refresh_token(nixa, http):
    client = register_client(nixa)
    for junk in ("x", "a" * 600, "a.b.c"):
        r = refresh(http, client, junk)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_public_client_refresh(nixa, browser, http):
    client, tokens = start(nixa, browser, http, token_endpoint_auth_method="none")
    r = refresh(http, client, tokens["refresh_token"])
    assert r.status_code == 200, r.text


# ---- the grant's absolute lifetime (refresh_grant_max_lifetime) --------------------------------


def _age_grant(nixa, refresh_token: str, age: float) -> None:  # noqa: ANN001
    from idp.store.models import Grant

    row, grant = nixa.tokens.find_refresh_token(refresh_token)
    with nixa.db.session() as s:
        s.get(Grant, grant.id).created_at = nixa.clock() - age


def test_rotation_never_extends_the_grant_past_its_absolute_lifetime(nixa, browser, http):
    """Each rotation used to grant refresh_token_ttl afresh, so a grant could live forever."""
    client, tokens = start(nixa, browser, http)
    max_life = nixa.settings.refresh_grant_max_lifetime
    _age_grant(nixa, tokens["refresh_token"], max_life - 3600)  # one hour of the grant left
    r = refresh(http, client, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    row, grant = nixa.tokens.find_refresh_token(r.json()["refresh_token"])
    assert row.expires_at <= grant.created_at + max_life
    assert row.expires_at < nixa.clock() + nixa.settings.refresh_token_ttl - 86400


def test_refresh_after_the_absolute_lifetime_is_invalid_grant(nixa, browser, http):
    client, tokens = start(nixa, browser, http)
    _age_grant(nixa, tokens["refresh_token"], nixa.settings.refresh_grant_max_lifetime + 1)
    r = refresh(http, client, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_first_refresh_token_is_capped_by_a_short_absolute_lifetime(nixa, browser, http, monkeypatch):
    monkeypatch.setattr(nixa.settings, "refresh_grant_max_lifetime", 7200)
    client, tokens = start(nixa, browser, http)
    row, grant = nixa.tokens.find_refresh_token(tokens["refresh_token"])
    assert row.expires_at <= grant.created_at + 7200 + 1
