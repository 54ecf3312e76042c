"""ID token validation against real signed (and forged) tokens, without any upstream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from connectors.oidc.errors import UpstreamResponseRejected
from connectors.oidc.id_token import UnknownSigningKey, validate_id_token

ISSUER = "https://operator.example.vn"
CLIENT = "nixa"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_800_000_000

rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
PUBLIC = KeySet.import_key_set({"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]})


def claims(**overrides):
    base = {"iss": ISSUER, "sub": "subscriber-1", "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "nonce": NONCE}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, key=rsa, alg="RS256", kid="rsa-1"):
    header = {"alg": alg} | ({"kid": kid} if kid else {})
    return jwt.encode(header, payload, key, algorithms=[alg])


def validate(token, **overrides):
    options = dict(
        keys=PUBLIC,
        algorithms=["RS256", "ES256"],
        issuer=ISSUER,
        client_id=CLIENT,
        nonce=NONCE,
        now=lambda: NOW,
        leeway=60,
        max_age=600,
    )
    options.update(overrides)
    return validate_id_token(token, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, payload: dict, signature: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}"


def expect(code: str, token: str, **overrides) -> None:
    with pytest.raises(UpstreamResponseRejected) as caught:
        validate(token, **overrides)
    assert caught.value.code == code, caught.value


def test_valid_rs256_and_es256():
    assert validate(sign(claims()))["sub"] == "subscriber-1"
    assert validate(sign(claims(), ec, "ES256", "ec-1"))["sub"] == "subscriber-1"


def test_alg_none_is_refused():
    expect("id_token_invalid", forged({"alg": "none"}, claims()))


def test_hs256_keyed_with_the_public_key_is_refused():
    # Algorithm confusion: an HMAC "signed" with the upstream's public key material.
    header = {"alg": "HS256", "kid": "rsa-1"}
    public_pem = rsa.as_pem(private=False)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    expect("id_token_invalid", f"{signing_input}.{b64(signature)}")


def test_alg_outside_the_allowlist_is_refused():
    expect("id_token_invalid", sign(claims(), ec, "ES256", "ec-1"), algorithms=["RS256"])


def test_key_of_another_type_than_alg_is_refused():
    # The header names the EC key but claims RS256.
    token = sign(claims())
    _, rest = token.split(".", 1)
    relabelled = b64(json.dumps({"alg": "RS256", "kid": "ec-1"}).encode()) + "." + rest
    expect("id_token_invalid", relabelled)


def test_bad_signature():
    other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    expect("id_token_invalid", sign(claims(), other))


def test_unknown_kid_asks_for_a_jwks_refetch():
    with pytest.raises(UnknownSigningKey):
        validate(sign(claims(), kid="rotated-2"))


def test_no_kid_with_several_candidate_keys_is_refused():
    expect(
        "id_token_invalid",
        sign(claims(), kid=None),
        keys=KeySet.import_key_set(
            {
                "keys": [
                    rsa.as_dict(private=False) | {"kid": "a"},
                    RSAKey.generate_key(2048).as_dict(private=False) | {"kid": "b"},
                ]
            }
        ),
    )


def test_no_kid_with_a_single_key_is_accepted():
    single = KeySet.import_key_set({"keys": [rsa.as_dict(private=False)]})
    assert validate(sign(claims(), kid=None), keys=single)["sub"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://evil.example"},
        {"iss": None},
        {"aud": "another-client"},
        {"aud": [CLIENT, "another-client"]},
        {"aud": None},
        {"azp": "another-client"},
        {"exp": NOW - 61},
        {"exp": None},
        {"iat": NOW + 120},
        {"iat": NOW - 601, "exp": NOW + 300},
        {"iat": None},
        {"sub": None},
        {"sub": ""},
        {"nbf": NOW + 120},
    ],
)
def test_claims_are_checked(overrides):
    expect("id_token_invalid", sign(claims(**overrides)))


def test_azp_equal_to_client_and_list_audience_are_fine():
    assert validate(sign(claims(aud=[CLIENT], azp=CLIENT)))["sub"]


def test_nonce_must_match():
    expect("nonce_mismatch", sign(claims(nonce="other")))
    expect("nonce_mismatch", sign(claims(nonce=None)))


def test_at_hash_checked_when_present():
    token = "access-token-value"
    good = create_half_hash(token, "RS256").decode()
    assert validate(sign(claims(at_hash=good)), access_token=token)["sub"]
    expect("id_token_invalid", sign(claims(at_hash=good)), access_token="another-access-token")


def test_uses_injected_clock():
    token = sign(claims())
    expect("id_token_invalid", token, now=lambda: int(time.time()) + 10**8)
