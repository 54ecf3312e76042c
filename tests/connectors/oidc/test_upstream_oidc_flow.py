"""A full sign-in at the stand-in operator (node oidc-provider), driven without a browser."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.base import InvalidCredentials, LevelOfAssurance, NotAllowed, RedirectConnector
from connectors.oidc.connector import UpstreamOidcConnector

from .conftest import CALLBACK, PKJWT_CLIENT_ID
from .upstream_browser import sign_in_at_upstream


def sign_in(connector: UpstreamOidcConnector, hint: str | None = "0912 345 678", **browser):
    url, saved = connector.login_url("state-123", CALLBACK, login_hint=hint)
    params = sign_in_at_upstream(url, CALLBACK, **browser)
    return url, saved, params


def test_is_a_redirect_connector(operator, connector_for):
    assert isinstance(connector_for(operator.issuer), RedirectConnector)


def test_authorization_request_carries_pkce_nonce_hint_and_acr(operator, connector_for):
    connector = connector_for(operator.issuer)
    url, saved = connector.login_url("state-123", CALLBACK, login_hint="+84 912 345 678")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(operator.issuer + "/auth?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "nixa"
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == "openid phone"
    assert query["state"] == "state-123" == saved["state"]
    assert query["nonce"] == saved["nonce"] and len(saved["nonce"]) >= 32
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] != saved["code_verifier"] and len(saved["code_verifier"]) >= 43
    assert query["login_hint"] == "MSISDN:84912345678"
    assert query["acr_values"] == "2"
    # Two requests never share secrets.
    _, other = connector.login_url("state-123", CALLBACK)
    assert other["nonce"] != saved["nonce"] and other["code_verifier"] != saved["code_verifier"]


def test_full_sign_in_yields_assertion(operator, connector_for):
    connector = connector_for(operator.issuer)
    before = time.time()
    _, saved, params = sign_in(connector)
    assert params["iss"] == operator.issuer and params["state"] == "state-123"

    assertion = connector.handle_callback(params, CALLBACK, saved)

    assert assertion.connector_id == "operator"
    # The operator's own pseudonymous subscriber reference, never the phone number.
    assert assertion.subject and "84912345678" not in assertion.subject
    phone = assertion.attributes["phone_number"]
    assert phone.value == "+84912345678"
    assert phone.source == "oidc:operator"
    assert phone.verified_at >= before
    assert assertion.loa is LevelOfAssurance.SUBSTANTIAL
    assert assertion.amr == ("mca",)
    assert assertion.connector_data["acr"] == "2"
    assert assertion.connector_data["issuer"] == operator.issuer
    assert assertion.authenticated_at >= before - 1


def test_subject_is_stable_per_subscriber(operator, connector_for):
    connector = connector_for(operator.issuer)
    first = connector.handle_callback(*_callback(connector, "0912345678"))
    again = connector.handle_callback(*_callback(connector, "84912345678"))
    other = connector.handle_callback(*_callback(connector, "0987654321"))
    assert first.subject == again.subject != other.subject
    assert other.value("phone_number") == "+84987654321"


def _callback(connector, hint):
    _, saved, params = sign_in(connector, hint)
    return params, CALLBACK, saved


def test_subscriber_can_correct_the_number_on_the_phone_page(operator, connector_for):
    connector = connector_for(operator.issuer)
    pages: list[str] = []
    _, saved, params = sign_in(connector, hint=None, msisdn="0355 555 555", pages=pages)
    assert 'value=""' in pages[0]  # nothing prefilled without a hint
    assert connector.handle_callback(params, CALLBACK, saved).value("phone_number") == "+84355555555"


def test_login_hint_is_prefilled_on_the_operator_page(operator, connector_for):
    pages: list[str] = []
    sign_in(connector_for(operator.issuer), "0912345678", pages=pages)
    assert 'value="84912345678"' in pages[0]
    assert "Xác nhận" in pages[0] and "Confirm" in pages[0]


def test_invalid_phone_hint_is_refused_before_redirecting(operator, connector_for):
    with pytest.raises(InvalidCredentials) as caught:
        connector_for(operator.issuer).login_url("s", CALLBACK, login_hint="12345")
    assert caught.value.code == "invalid_msisdn"


def test_level_3_with_trusted_upstream_amr(operator, connector_for):
    connector = connector_for(operator.issuer, acr_values=["3"], trust_upstream_amr=True, loa="substantial")
    _, saved, params = sign_in(connector)
    assertion = connector.handle_callback(params, CALLBACK, saved)
    assert assertion.connector_data["acr"] == "3"
    assert assertion.amr == ("mca", "pin", "mfa")


def test_acr_not_met_is_refused(operator, connector_for):
    # The operator doesn't support "4" and answers with its default level "2".
    connector = connector_for(operator.issuer, acr_values=["4"])
    _, saved, params = sign_in(connector)
    with pytest.raises(NotAllowed) as caught:
        connector.handle_callback(params, CALLBACK, saved)
    assert caught.value.code == "upstream_acr_not_met"


def test_untrusted_claims_are_not_attributes(operator, connector_for):
    connector = connector_for(operator.issuer, verified_claims=[])
    _, saved, params = sign_in(connector)
    assertion = connector.handle_callback(params, CALLBACK, saved)
    assert assertion.subject
    assert dict(assertion.attributes) == {}


def test_claims_map_renames_attributes(operator, connector_for):
    connector = connector_for(operator.issuer, claims_map={"phone_number": "mobile"})
    _, saved, params = sign_in(connector)
    assertion = connector.handle_callback(params, CALLBACK, saved)
    assert assertion.value("mobile") == "+84912345678"
    assert "phone_number" not in assertion.attributes


def test_private_key_jwt_client_and_es256_id_token(operator, connector_for, client_key):
    connector = connector_for(
        operator.issuer,
        client_id=PKJWT_CLIENT_ID,
        client_secret=None,
        token_endpoint_auth_method="private_key_jwt",
        private_key=client_key.as_dict(private=True),
    )
    _, saved, params = sign_in(connector)
    assertion = connector.handle_callback(params, CALLBACK, saved)
    assert assertion.value("phone_number") == "+84912345678"


def test_pairwise_subjects_differ_between_clients(operator, connector_for, client_key):
    basic = connector_for(operator.issuer)
    pkjwt = connector_for(
        operator.issuer,
        client_id=PKJWT_CLIENT_ID,
        client_secret=None,
        token_endpoint_auth_method="private_key_jwt",
        private_key=client_key.as_dict(private=True),
    )
    a = basic.handle_callback(*_callback(basic, "0912345678"))
    b = pkjwt.handle_callback(*_callback(pkjwt, "0912345678"))
    # Both clients share one sector (127.0.0.1), so the operator gives them the same reference.
    assert a.subject == b.subject


def test_health(operator, connector_for):
    health = connector_for(operator.issuer).health()
    assert health.ok and health.latency_ms is not None


def test_health_reports_issuer_mismatch(operator, connector_for):
    health = connector_for(operator.issuer + "/").health()
    assert not health.ok and "issuer" in health.detail


def test_upstream_amr_ignored_unless_trusted(operator, connector_for):
    connector = connector_for(operator.issuer, acr_values=["3"], amr=["mca", "otp"])
    _, saved, params = sign_in(connector)
    assert connector.handle_callback(params, CALLBACK, saved).amr == ("mca", "otp")
