from __future__ import annotations

import pytest

from connectors.base import LevelOfAssurance
from connectors.oidc.config import UpstreamOidcConfig
from connectors.oidc.msisdn import normalize_msisdn, phone_to_e164, to_e164


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "0912 345 678",
        "0912.345.678",
        "+84912345678",
        "+84 91 234 5678",
        "84912345678",
        "MSISDN:84912345678",
        "msisdn:0912345678",
        "912345678",
    ],
)
def test_vietnamese_mobile_shapes(raw):
    assert normalize_msisdn(raw) == "84912345678"
    assert to_e164(raw) == "+84912345678"


@pytest.mark.parametrize("raw", ["", None, "12345", "0212345678", "+1 650 555 0100", "091234567", "09123456789", "84-abc", "+8491234567"])
def test_not_vietnamese_mobiles(raw):
    assert normalize_msisdn(raw) is None


def test_phone_claim_to_e164():
    assert phone_to_e164("+84912345678") == "+84912345678"
    assert phone_to_e164("0912345678") == "+84912345678"
    assert phone_to_e164("+16505550100") == "+16505550100"
    assert phone_to_e164("+84 1") is None
    assert phone_to_e164(84912345678) is None


def base(**overrides):
    return {"issuer": "https://operator.example.vn", "client_id": "nixa", "client_secret": "s", **overrides}


def test_defaults():
    config = UpstreamOidcConfig.from_mapping(base())
    assert config.loa is LevelOfAssurance.SUBSTANTIAL
    assert config.amr == ("mca",)
    assert config.all_scopes == ("openid",)
    assert config.token_endpoint_auth_method == "client_secret_basic"
    assert config.verified_claims == ()


def test_parsing():
    config = UpstreamOidcConfig.from_mapping(base(scopes="phone", acr_values=["3", "2"], loa="urn:nixa:loa:low", timeout="2.5"))
    assert config.all_scopes == ("openid", "phone")
    assert config.acr_values == ("3", "2")
    assert config.loa is LevelOfAssurance.LOW
    assert config.timeout == 2.5


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "http://operator.example.vn"},  # plain http off loopback
        {"issuer": "https://operator.example.vn?x=1"},
        {"client_id": ""},
        {"client_secret": None},
        {"token_endpoint_auth_method": "none"},
        {"token_endpoint_auth_method": "private_key_jwt", "private_key": None},
        {"token_endpoint_auth_method": "private_key_jwt", "private_key": "-----BEGIN PRIVATE KEY-----"},
        {"id_token_algs": ["HS256"]},
        {"id_token_algs": ["none"]},
        {"amr": ["magic"]},
        {"userinfo": "sometimes"},
        {"unknown_option": 1},
        {"timeout": 0},
        {"login_hint_format": "MSISDN:{phone}"},
    ],
)
def test_refused_configurations(overrides):
    with pytest.raises(ValueError):
        UpstreamOidcConfig.from_mapping(base(**overrides))


@pytest.mark.parametrize("raw", ["MSISDN:８４９１２３４５６７８", "０９１２\u3000３４５\u3000６７８", "٠٩١٢٣٤٥٦٧٨", "0084912345678"])
def test_one_normalisation_with_the_telecom_connector(raw):
    from connectors.telecom.phone import normalize_msisdn as telecom_e164

    assert normalize_msisdn(raw) == "84912345678"
    assert "+" + normalize_msisdn(raw) == telecom_e164(raw.removeprefix("MSISDN:"))


@pytest.mark.parametrize("raw", ["MSISDN:", "0890000000", "0912abc678", "0912345678 ext 1"])
def test_ranges_and_shapes_libphonenumber_refuses(raw):
    assert normalize_msisdn(raw) is None
