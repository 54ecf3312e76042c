"""Helpers shared by the protocol tests: token calls, forged JWTs, browser shortcuts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from tests.conftest import authorize, form_action, hidden, query_of, sign_in_local

ISSUER = "http://testserver"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned_jwt(claims: dict, header: dict | None = None) -> str:
    """alg none (RFC 7519 §6.1): the classic forgery."""
    h = {"alg": "none", "typ": "JWT", **(header or {})}
    return f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(claims).encode())}."


def hs256_jwt(claims: dict, key: bytes, header: dict | None = None) -> str:
    """HS256 keyed with arbitrary bytes (e.g. our public key): the alg-confusion forgery."""
    h = {"alg": "HS256", "typ": "JWT", **(header or {})}
    signing_input = f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(sig)}"


def foreign_es256_jwt(claims: dict, header: dict | None = None) -> str:
    """Properly signed, but by a key NIXA never published."""
    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"kid": "attacker"}, private=True)
    return jwt.encode({"alg": "ES256", "kid": "attacker", **(header or {})}, claims, key, algorithms=["ES256"])


def auth_of(client):  # noqa: ANN001, ANN201
    return (client.client_id, client.secret) if client.secret else None


def token_call(http, client, **data):  # noqa: ANN001, ANN201
    """POST /token with client_secret_basic (or client_id in the body for a public client)."""
    if not client.secret:
        data.setdefault("client_id", client.client_id)
    return http.post("/token", data=data, auth=auth_of(client))


def get_code(browser, client, citizen, **params) -> tuple[str, str, dict]:  # noqa: ANN001
    """Run the browser part of the flow; returns (code, verifier, query)."""
    r, q, verifier = authorize(browser, client, **params)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    if location.startswith("/interaction/"):
        page = browser.get(location)
        if "/local" not in page.text and "/consent" in page.text:  # already signed in (SSO): consent only
            r = browser.post(form_action(page.text, "/consent"), data={"csrf": hidden(page.text, "csrf"), "decision": "allow"})
            location = r.headers["location"]
        else:
            location = sign_in_local(browser, location, citizen).headers["location"]
    cb = query_of(location)
    assert "code" in cb, location
    return cb["code"], verifier, q


def redeem(http, client, code: str, verifier: str | None, **extra):  # noqa: ANN001, ANN201
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    data.update(extra)
    return token_call(http, client, **data)


def introspect(http, client, token: str, **extra):  # noqa: ANN001, ANN201
    return http.post("/introspect", data={"token": token, **extra}, auth=auth_of(client))


def userinfo(http, access_token: str):  # noqa: ANN001, ANN201
    return http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def access_claims(**over) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ISSUER, "sub": "someone", "client_id": "x", "iat": now, "exp": now + 300,
              "jti": secrets.token_hex(8), "scope": "openid profile"}
    claims.update(over)
    return claims


def public_pem(nixa) -> bytes:  # noqa: ANN001
    """One of NIXA's published public keys, as PEM (what an attacker would HMAC with)."""
    from joserfc.jwk import ECKey

    jwk = next(k for k in nixa.keys.jwks()["keys"] if k["kty"] == "EC")
    return ECKey.import_key(jwk).as_pem(private=False)
