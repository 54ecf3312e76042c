"""Authlib's OAuth 2.0 client (the httpx integration) as an independent relying party against a
running NIXA: discovery, code + PKCE, ID token validation with joserfc against the published JWKS,
userinfo, refresh rotation, introspection, revocation, client_credentials, private_key_jwt and
RP-initiated logout. Only NIXA's public HTTP interface is used."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.conftest import make_citizen, register_client

pytestmark = pytest.mark.interop

REDIRECT = "https://rp.example.vn/callback"
BYE = "https://rp.example.vn/bye"
HALF_HASH = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "PS256": hashlib.sha256, "EdDSA": hashlib.sha512}


def discover(issuer: str) -> dict:
    r = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    meta = r.json()
    assert meta["issuer"] == issuer  # OIDC Discovery §4.3
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint",
                 "revocation_endpoint", "end_session_endpoint"):
        assert meta[name].startswith(issuer + "/"), name
    assert "S256" in meta["code_challenge_methods_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    return meta


def validate_id_token(meta: dict, id_token: str, client_id: str, nonce: str | None, access_token: str | None) -> dict:
    """OIDC Core §3.1.3.7 and §3.1.3.8 with joserfc, keys from jwks_uri."""
    jwks = KeySet.import_key_set(httpx.get(meta["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(id_token, jwks, algorithms=meta["id_token_signing_alg_values_supported"])
    alg = decoded.header["alg"]
    assert decoded.header.get("kid")
    registry = jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    registry.validate(decoded.claims)
    claims = decoded.claims
    if isinstance(claims["aud"], list) and len(claims["aud"]) > 1:
        assert claims.get("azp") == client_id
    if nonce is not None:
        assert claims["nonce"] == nonce
    else:
        assert "nonce" not in claims
    if access_token is not None:
        digest = HALF_HASH[alg](access_token.encode()).digest()
        expected = base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
        assert claims["at_hash"] == expected
    return claims


def sign_in(oauth: OAuth2Client, meta: dict, user_agent, citizen, scope: str) -> tuple[dict, str]:  # noqa: ANN001
    """Code + PKCE (S256): the browser part in `user_agent`, the code exchange by Authlib."""
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = oauth.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, scope=scope)
    callback = user_agent.sign_in(url, citizen)
    assert callback.startswith(REDIRECT + "?"), callback
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert params["iss"] == meta["issuer"]  # RFC 9207 §2.4: Authlib does not check it, the RP must
    token = oauth.fetch_token(meta["token_endpoint"], authorization_response=callback, state=state, code_verifier=verifier)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert set(token["scope"].split()) == set(scope.split())
    return token, nonce


def test_authlib_code_flow_userinfo_refresh_introspect_revoke_logout(live, user_agent):  # noqa: ANN001
    meta = discover(live.url)
    client = register_client(live.nixa, redirect_uri=REDIRECT)
    citizen = make_citizen(live.nixa)
    with OAuth2Client(client.client_id, client.secret, redirect_uri=REDIRECT, code_challenge_method="S256", timeout=10) as oauth:
        token, nonce = sign_in(oauth, meta, user_agent, citizen, "openid profile email offline_access")
        claims = validate_id_token(meta, token["id_token"], client.client_id, nonce, token["access_token"])
        assert claims["sid"] and claims["auth_time"] and claims["acr"] and claims["amr"] == ["pwd"]

        # userinfo with the bearer token Authlib holds
        ui = oauth.get(meta["userinfo_endpoint"])
        assert ui.status_code == 200, ui.text
        assert ui.json()["sub"] == claims["sub"]
        assert ui.json()["email"] == f"{citizen.username}@example.vn"

        # refresh with rotation; the new ID token keeps sub and auth_time, has no nonce
        first_rt = token["refresh_token"]
        new = oauth.refresh_token(meta["token_endpoint"], refresh_token=first_rt)
        assert new["refresh_token"] and new["refresh_token"] != first_rt
        assert new["access_token"] != token["access_token"]
        new_claims = validate_id_token(meta, new["id_token"], client.client_id, None, new["access_token"])
        assert new_claims["sub"] == claims["sub"] and new_claims["auth_time"] == claims["auth_time"]

        # introspection (RFC 7662) of the access and refresh tokens
        info = oauth.introspect_token(meta["introspection_endpoint"], token=new["access_token"]).json()
        assert info["active"] is True and info["client_id"] == client.client_id and info["sub"] == claims["sub"]
        assert info["iss"] == meta["issuer"]
        info = oauth.introspect_token(meta["introspection_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token").json()
        assert info["active"] is True

        # revocation (RFC 7009) of the access token, then the refresh token
        r = oauth.revoke_token(meta["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token")
        assert r.status_code == 200, r.text
        assert oauth.introspect_token(meta["introspection_endpoint"], token=new["access_token"]).json() == {"active": False}
        r = oauth.revoke_token(meta["revocation_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token")
        assert r.status_code == 200, r.text
        info = oauth.introspect_token(meta["introspection_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token")
        assert info.json() == {"active": False}

    # RP-initiated logout 1.0: id_token_hint + post_logout_redirect_uri + state, in the browser
    state = secrets.token_urlsafe(8)
    target, _ = user_agent.visit(meta["end_session_endpoint"] + "?" + urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": BYE, "state": state}))
    assert target is not None and target.startswith(BYE + "?"), target
    assert parse_qs(urlsplit(target).query)["state"] == [state]


class ShortPrivateKeyJWT(PrivateKeyJWT):
    """Authlib signs hour-long assertions by default; NIXA accepts at most
    client_assertion_max_lifetime (300 s), so a client configures a short one."""

    def sign(self, auth, token_endpoint):  # noqa: ANN001, ANN201
        from authlib.oauth2.rfc7523 import private_key_jwt_sign

        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id, token_endpoint=token_endpoint,
                                    header=self.headers, alg=self.alg, expires_in=60)


def test_authlib_default_hour_long_assertion_is_refused(live):  # noqa: ANN001
    meta = discover(live.url)
    key = ECKey.generate_key("P-256", parameters={"kid": f"rp-{secrets.token_hex(6)}", "alg": "ES256", "use": "sig"})
    client = register_client(live.nixa, redirect_uri=REDIRECT, token_endpoint_auth_method="private_key_jwt",
                             jwks={"keys": [key.as_dict(private=False)]}, grant_types=["client_credentials"], redirect_uris=[],
                             post_logout_redirect_uris=[], scope="profile")
    with OAuth2Client(client.client_id, key, token_endpoint_auth_method="private_key_jwt", timeout=10) as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(meta["token_endpoint"], alg="ES256", headers={"kid": key.kid}))
        with pytest.raises(Exception, match="invalid_client"):
            oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials", scope="profile")


def test_authlib_private_key_jwt_and_client_credentials(live, user_agent):  # noqa: ANN001
    meta = discover(live.url)
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    key = ECKey.generate_key("P-256", parameters={"kid": f"rp-{secrets.token_hex(6)}", "alg": "ES256", "use": "sig"})
    client = register_client(live.nixa, redirect_uri=REDIRECT, token_endpoint_auth_method="private_key_jwt",
                             jwks={"keys": [key.as_dict(private=False)]},
                             grant_types=["authorization_code", "refresh_token", "client_credentials"])
    citizen = make_citizen(live.nixa)
    auth = ShortPrivateKeyJWT(meta["token_endpoint"], alg="ES256", headers={"kid": key.kid})
    with OAuth2Client(client.client_id, key, token_endpoint_auth_method="private_key_jwt",
                      revocation_endpoint_auth_method="private_key_jwt", redirect_uri=REDIRECT, code_challenge_method="S256",
                      timeout=10) as oauth:
        oauth.register_client_auth_method(auth)
        token, nonce = sign_in(oauth, meta, user_agent, citizen, "openid profile")
        validate_id_token(meta, token["id_token"], client.client_id, nonce, token["access_token"])
        info = oauth.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
        assert info["active"] is True and info["client_id"] == client.client_id

        cc = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials", scope="profile")
        assert cc["token_type"].lower() == "bearer" and "refresh_token" not in cc and "id_token" not in cc
        info = oauth.introspect_token(meta["introspection_endpoint"], token=cc["access_token"]).json()
        assert info["active"] is True and info["client_id"] == client.client_id
        assert oauth.revoke_token(meta["revocation_endpoint"], token=cc["access_token"]).status_code == 200
        assert oauth.introspect_token(meta["introspection_endpoint"], token=cc["access_token"]).json() == {"active": False}


def test_authlib_client_credentials_with_secret(live):  # noqa: ANN001
    meta = discover(live.url)
    client = register_client(live.nixa, grant_types=["client_credentials"], redirect_uris=[], post_logout_redirect_uris=[], scope="profile")
    with OAuth2Client(client.client_id, client.secret, scope="profile", timeout=10) as oauth:
        cc = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        assert cc["access_token"] and cc["scope"] == "profile"
        info = oauth.introspect_token(meta["introspection_endpoint"], token=cc["access_token"]).json()
        assert info["active"] is True and info["sub"] == client.client_id
