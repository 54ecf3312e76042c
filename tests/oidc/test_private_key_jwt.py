"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9): only asymmetric
signatures by the client's registered key, the right audience, unexpired, jti used once."""

from __future__ import annotations

import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.conftest import make_citizen, register_client
from tests.oidc.helpers import ISSUER, get_code, hs256_jwt, unsigned_jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def client_key():  # noqa: ANN201
    return ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"}, private=True)


@pytest.fixture()
def pkjwt_client(nixa, client_key):  # noqa: ANN001, ANN201
    return register_client(nixa, token_endpoint_auth_method="private_key_jwt",
                           jwks={"keys": [client_key.as_dict(private=False)]})


def claims_for(client_id: str, **over) -> dict:
    now = int(time.time())
    c = {"iss": client_id, "sub": client_id, "aud": f"{ISSUER}/token", "iat": now, "exp": now + 60, "jti": secrets.token_hex(12)}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(key, claims: dict, alg: str = "ES256") -> str:  # noqa: ANN001
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def token_with_assertion(http, client, assertion: str, code: str = "nothing", verifier: str | None = None):  # noqa: ANN001, ANN201
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    if verifier:
        data["code_verifier"] = verifier
    return http.post("/token", data=data)


def test_good_assertion_redeems_the_code(nixa, browser, http, pkjwt_client, client_key):
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    r = token_with_assertion(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id)), code, verifier)
    assert r.status_code == 200, r.text
    assert r.json()["id_token"]


def test_issuer_as_audience_is_accepted(nixa, browser, http, pkjwt_client, client_key):
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    r = token_with_assertion(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, aud=ISSUER)), code, verifier)
    assert r.status_code == 200, r.text


def test_replayed_jti_is_refused(nixa, browser, http, pkjwt_client, client_key):
    citizen = make_citizen(nixa)
    assertion = sign(client_key, claims_for(pkjwt_client.client_id))
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    assert token_with_assertion(http, pkjwt_client, assertion, code, verifier).status_code == 200
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    r = token_with_assertion(http, pkjwt_client, assertion, code, verifier)
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"


def _refused(http, client, assertion: str) -> None:  # noqa: ANN001
    r = token_with_assertion(http, client, assertion)
    # RFC 6749 §5.2: 401 is a MUST only when the Authorization header was used.
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == "invalid_client"
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("aud", ["https://other.example.vn/token", "http://testserver/authorize", ["https://other.example"]])
def test_wrong_audience_is_refused(http, pkjwt_client, client_key, aud):
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, aud=aud)))


def test_expired_assertion_is_refused(http, pkjwt_client, client_key):
    old = int(time.time()) - 3600
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, iat=old, exp=old + 60)))


def test_assertion_without_exp_is_refused(http, pkjwt_client, client_key):
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, exp=None)))


def test_assertion_without_jti_is_refused(http, pkjwt_client, client_key):
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, jti=None)))


def test_iss_sub_mismatch_is_refused(nixa, http, pkjwt_client, client_key):
    other = register_client(nixa)
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, iss=other.client_id)))


def test_hs256_keyed_with_the_public_key_is_refused(http, pkjwt_client, client_key):
    for key in (client_key.as_pem(private=False), client_key.as_bytes(private=False) if hasattr(client_key, "as_bytes") else b"k"):
        _refused(http, pkjwt_client, hs256_jwt(claims_for(pkjwt_client.client_id), key, {"kid": client_key.kid}))


def test_alg_none_is_refused(http, pkjwt_client, client_key):
    _refused(http, pkjwt_client, unsigned_jwt(claims_for(pkjwt_client.client_id), {"kid": client_key.kid}))


def test_key_of_someone_else_is_refused(http, pkjwt_client):
    stranger = ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"}, private=True)
    _refused(http, pkjwt_client, sign(stranger, claims_for(pkjwt_client.client_id)))


def test_garbage_assertion_is_refused(http, pkjwt_client):
    for junk in ("x", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "...."):
        _refused(http, pkjwt_client, junk)


def test_assertion_for_a_secret_client_is_refused(nixa, http, client_key):
    client = register_client(nixa)
    _refused(http, client, sign(client_key, claims_for(client.client_id)))


def test_secret_for_a_private_key_jwt_client_is_refused(http, pkjwt_client):
    r = http.post("/token", data={"grant_type": "authorization_code", "code": "x", "redirect_uri": pkjwt_client.redirect_uri},
                  auth=(pkjwt_client.client_id, "a" * 40))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_unreachable_jwks_uri_is_invalid_client_not_500(nixa, http, client_key):
    from tests.conftest import free_port

    client = register_client(nixa, token_endpoint_auth_method="private_key_jwt", jwks_uri=f"http://127.0.0.1:{free_port()}/jwks")
    _refused(http, client, sign(client_key, claims_for(client.client_id)))


# ---- strict lifetimes (issue 7, item 5) ------------------------------------------------------------


def test_assertion_living_longer_than_the_maximum_is_refused(http, pkjwt_client, client_key):
    now = int(time.time())
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, exp=now + 3600)))


def test_assertion_at_the_maximum_lifetime_is_accepted(nixa, browser, http, pkjwt_client, client_key):
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    exp = int(time.time()) + nixa.settings.client_assertion_max_lifetime
    r = token_with_assertion(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, exp=exp)), code, verifier)
    assert r.status_code == 200, r.text


def test_assertion_without_iat_is_refused(http, pkjwt_client, client_key):
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, iat=None)))


@pytest.mark.parametrize("iat", ["yesterday", True])
def test_assertion_with_a_malformed_iat_is_refused(http, pkjwt_client, client_key, iat):
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, iat=iat)))


def test_assertion_issued_in_the_future_is_refused(http, pkjwt_client, client_key):
    now = int(time.time())
    _refused(http, pkjwt_client, sign(client_key, claims_for(pkjwt_client.client_id, iat=now + 120, exp=now + 180)))


def test_assertion_issued_within_the_clock_skew_is_accepted(nixa, browser, http, pkjwt_client, client_key):
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    now = int(time.time())
    assertion = sign(client_key, claims_for(pkjwt_client.client_id, iat=now + 20, exp=now + 80))
    assert token_with_assertion(http, pkjwt_client, assertion, code, verifier).status_code == 200


def test_jti_is_remembered_until_exp_however_far(nixa, browser, http, pkjwt_client, client_key, monkeypatch):
    """The replay cache used to be capped at 24 h whatever exp said: a two-day assertion could be
    replayed on its second day. Now the jti is kept until exp (plus the leeway)."""
    monkeypatch.setattr(nixa.settings, "client_assertion_max_lifetime", 3 * 86400)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, pkjwt_client, citizen)
    exp = int(time.time()) + 2 * 86400
    claims = claims_for(pkjwt_client.client_id, exp=exp)
    assert token_with_assertion(http, pkjwt_client, sign(client_key, claims), code, verifier).status_code == 200
    remembered = nixa.store.ttl(f"jti:{pkjwt_client.client_id}:{claims['jti']}")
    assert remembered is not None and remembered >= exp - time.time()
