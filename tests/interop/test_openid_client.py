"""panva's openid-client v6 (a certified OpenID relying party library, in node) against a running
NIXA. Every protocol check is the library's own: discovery issuer match, RFC 9207 `iss` in the
authorization response, state, PKCE, the ID token (signature against the JWKS, iss, aud, exp,
iat, nonce, alg from the discovery document), userinfo `sub` match. A test passing here means
an independent conformant RP accepts NIXA's responses."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from tests.conftest import make_citizen, register_client

pytestmark = pytest.mark.interop

REDIRECT = "https://rp.example.vn/callback"
BYE = "https://rp.example.vn/bye"


def _discover(node_rp, live, client, auth: str = "client_secret_basic") -> dict:  # noqa: ANN001
    server = node_rp.ok("discover", issuer=live.url, client_id=client.client_id, client_secret=client.secret, auth=auth)["server"]
    assert server["issuer"] == live.url
    return server


def _sign_in(node_rp, user_agent, citizen, scope: str) -> dict:  # noqa: ANN001
    """buildAuthorizationUrl -> browser login + consent -> authorizationCodeGrant."""
    auth = node_rp.ok("authorize_url", redirect_uri=REDIRECT, scope=scope)
    callback = user_agent.sign_in(auth["url"], citizen)
    assert callback.startswith(REDIRECT + "?"), callback
    return node_rp.ok("callback", url=callback) | {"nonce": auth["nonce"]}


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_openid_client_code_flow_userinfo_refresh_introspect_revoke_logout(live, node_rp, user_agent):  # noqa: ANN001
    client = register_client(live.nixa, redirect_uri=REDIRECT)
    citizen = make_citizen(live.nixa)
    server = _discover(node_rp, live, client)
    assert server["authorization_response_iss_parameter_supported"] is True
    assert server["code_challenge_methods_supported"] == ["S256"]

    # code + PKCE: openid-client validates iss (RFC 9207), state, the code exchange and the ID token.
    # First show those checks are live: a callback with a foreign iss or state is refused before
    # the code is spent, then the genuine one succeeds.
    auth = node_rp.ok("authorize_url", redirect_uri=REDIRECT, scope="openid profile email offline_access")
    callback = user_agent.sign_in(auth["url"], citizen)
    assert callback.startswith(REDIRECT + "?"), callback
    for forged in (_with_query(callback, iss="https://evil.example"), _with_query(callback, state="forged")):
        refused = node_rp.call("callback", url=forged)
        assert refused["ok"] is False and refused.get("code") == "OAUTH_INVALID_RESPONSE", refused
    result = node_rp.ok("callback", url=callback) | {"nonce": auth["nonce"]}
    tokens, claims = result["tokens"], result["claims"]
    assert tokens["token_type"].lower() == "bearer"
    assert claims["iss"] == live.url
    assert claims["aud"] == client.client_id or claims["aud"] == [client.client_id]
    assert claims["nonce"] == result["nonce"]
    assert claims["at_hash"] and claims["sid"] and claims["auth_time"]

    # userinfo: openid-client checks the sub equals the ID token's
    userinfo = node_rp.ok("userinfo", access_token=tokens["access_token"], sub=claims["sub"])["userinfo"]
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["name"] == "Nguyễn Thị Bình"
    assert userinfo["email"] == f"{citizen.username}@example.vn"

    # refresh with rotation: a new refresh token, a new ID token for the same subject
    refreshed = node_rp.ok("refresh", refresh_token=tokens["refresh_token"])
    new_rt = refreshed["tokens"]["refresh_token"]
    assert new_rt and new_rt != tokens["refresh_token"]
    assert refreshed["claims"]["sub"] == claims["sub"]
    assert "nonce" not in refreshed["claims"]
    # the rotated-out refresh token is refused (and, being a reuse, revokes the grant: do it last)

    # introspection of both token kinds
    info = node_rp.ok("introspect", token=refreshed["tokens"]["access_token"])["introspection"]
    assert info["active"] is True and info["client_id"] == client.client_id and info["sub"] == claims["sub"]
    info = node_rp.ok("introspect", token=new_rt, hint="refresh_token")["introspection"]
    assert info["active"] is True

    # revocation of the refresh token; introspection then says inactive
    node_rp.ok("revoke", token=new_rt, hint="refresh_token")
    assert node_rp.ok("introspect", token=new_rt, hint="refresh_token")["introspection"]["active"] is False
    failed = node_rp.call("refresh", refresh_token=new_rt)
    assert failed["ok"] is False and failed.get("oauth_error") == "invalid_grant", failed

    # RP-initiated logout: buildEndSessionUrl, followed by the browser holding the session
    url = node_rp.ok("end_session", id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE, state="bye-42")["url"]
    assert url.startswith(server["end_session_endpoint"] + "?")
    target, _ = user_agent.visit(url)
    assert target is not None and target.startswith(BYE + "?"), target
    assert parse_qs(urlsplit(target).query)["state"] == ["bye-42"]


def test_openid_client_private_key_jwt(live, node_rp, user_agent):  # noqa: ANN001
    jwk = node_rp.ok("genkey")["jwk"]
    client = register_client(live.nixa, redirect_uri=REDIRECT, token_endpoint_auth_method="private_key_jwt",
                             jwks={"keys": [jwk]}, grant_types=["authorization_code", "refresh_token", "client_credentials"])
    assert client.secret is None
    citizen = make_citizen(live.nixa)
    _discover(node_rp, live, client, auth="private_key_jwt")

    result = _sign_in(node_rp, user_agent, citizen, "openid profile")
    assert result["claims"]["aud"] in (client.client_id, [client.client_id])
    info = node_rp.ok("introspect", token=result["tokens"]["access_token"])["introspection"]
    assert info["active"] is True and info["client_id"] == client.client_id

    # client_credentials authenticated by a fresh assertion (a new jti each time)
    cc = node_rp.ok("client_credentials", scope="profile")["tokens"]
    assert cc["token_type"].lower() == "bearer" and "id_token" not in cc and "refresh_token" not in cc
    info = node_rp.ok("introspect", token=cc["access_token"])["introspection"]
    assert info["active"] is True and info["client_id"] == client.client_id


def test_openid_client_client_credentials_secret(live, node_rp):  # noqa: ANN001
    client = register_client(live.nixa, grant_types=["client_credentials"], redirect_uris=[], post_logout_redirect_uris=[],
                             scope="profile", token_endpoint_auth_method="client_secret_post")
    _discover(node_rp, live, client, auth="client_secret_post")
    cc = node_rp.ok("client_credentials", scope="profile")["tokens"]
    assert cc["access_token"] and cc["expires_in"] > 0
    node_rp.ok("revoke", token=cc["access_token"], hint="access_token")
    assert node_rp.ok("introspect", token=cc["access_token"])["introspection"]["active"] is False
