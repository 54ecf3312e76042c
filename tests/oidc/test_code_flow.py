"""Authorization code + PKCE, end to end through the browser pages and the token endpoint."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import authorize, code_flow, make_citizen, query_of, register_client, sign_in_local


def _verify_id_token(http, token: str, client_id: str) -> dict:
    jwks = KeySet.import_key_set(http.get("/jwks").json())
    decoded = jwt.decode(token, jwks, algorithms=["ES256", "RS256", "EdDSA"])
    assert decoded.header["kid"]
    claims = decoded.claims
    assert claims["iss"] == "http://testserver"
    assert claims["aud"] == client_id
    return claims


def test_code_flow_issues_verifiable_tokens(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    tokens = code_flow(browser, http, client, citizen, scope="openid profile email offline_access")
    claims = _verify_id_token(http, tokens["id_token"], client.client_id)
    assert claims["nonce"] == tokens["_q"]["nonce"]
    assert claims["acr"] == "urn:nixa:loa:low"
    assert claims["amr"] == ["pwd"]
    assert "auth_time" in claims and "sid" in claims and "at_hash" in claims
    assert tokens["refresh_token"]
    ui = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert ui.status_code == 200
    body = ui.json()
    assert body["sub"] == claims["sub"]
    assert body["name"] == "Nguyễn Thị Bình"
    assert body["email"].endswith("@example.vn")
    assert "phone_number" not in body  # phone scope was not asked


def test_authorization_response_carries_iss_and_state(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    r, q, _ = authorize(browser, client)
    r = sign_in_local(browser, r.headers["location"], citizen)
    cb = query_of(r.headers["location"])
    assert cb["iss"] == "http://testserver"
    assert cb["state"] == q["state"]
    assert r.headers["location"].startswith(client.redirect_uri + "?")
