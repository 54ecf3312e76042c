"""Client metadata is either acted on or refused with its reason, never silently stored; what the
consent page shows of an app; per-client token lifetimes, which only ever shorten the
deployment's."""

from __future__ import annotations

import base64
import json
import time

import pytest
from sqlalchemy import select

from idp.oidc.metadata import NOT_ACTED_ON, InvalidClientMetadata, validate_metadata
from idp.oidc.tokens import token_hash
from idp.store.models import RefreshToken
from tests.conftest import authorize, code_flow, form_action, hidden, make_citizen, query_of, register_client

BASE = {"client_id": "rp-meta", "redirect_uris": ["https://rp.example.vn/cb"]}


@pytest.mark.parametrize("field", sorted(NOT_ACTED_ON))
def test_metadata_nixa_would_not_act_on_is_refused_with_its_reason(field):  # noqa: ANN001
    with pytest.raises(InvalidClientMetadata) as refused:
        validate_metadata({**BASE, field: "https://rp.example.vn/x"})
    assert field in str(refused.value) and NOT_ACTED_ON[field] in str(refused.value)


@pytest.mark.parametrize(("field", "value"), [
    ("policy_uri", "http://rp.example.vn/privacy"), ("tos_uri", "javascript:alert(1)"), ("client_uri", "https://x#frag"),
    ("nixa_access_token_ttl", 5), ("nixa_access_token_ttl", "600"), ("nixa_code_ttl", 601), ("nixa_id_token_ttl", True),
    ("nixa_refresh_token_ttl", 366 * 86400),
])
def test_links_and_lifetimes_are_checked(field, value):  # noqa: ANN001
    with pytest.raises(InvalidClientMetadata) as refused:
        validate_metadata({**BASE, field: value})
    assert field in str(refused.value)


def test_the_consent_page_shows_the_apps_policy_terms_and_site(nixa, browser):  # noqa: ANN001
    citizen = make_citizen(nixa)
    client = register_client(nixa, client_name="Cổng BHXH", policy_uri="https://bhxh.example.vn/rieng-tu",
                             tos_uri="https://bhxh.example.vn/dieu-khoan", client_uri="https://bhxh.example.vn/")
    r, _, _ = authorize(browser, client)
    page = browser.get(r.headers["location"]).text
    r = browser.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                         "password": citizen.password})
    consent = browser.get(r.headers["location"]).text
    assert 'href="https://bhxh.example.vn/rieng-tu"' in consent and "Chính sách quyền riêng tư của Cổng BHXH" in consent
    assert 'href="https://bhxh.example.vn/dieu-khoan"' in consent and 'href="https://bhxh.example.vn/"' in consent
    assert 'rel="noopener noreferrer"' in consent


def _claims(jwt_value: str) -> dict:
    payload = jwt_value.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_clients_own_lifetimes_shorten_the_deployments_and_never_lengthen_them(nixa, browser, http):  # noqa: ANN001
    citizen = make_citizen(nixa)
    short = register_client(nixa, nixa_access_token_ttl=120, nixa_id_token_ttl=90, nixa_refresh_token_ttl=3600, nixa_code_ttl=15)
    tokens = code_flow(browser, http, short, citizen, scope="openid profile offline_access")
    access, id_token = _claims(tokens["access_token"]), _claims(tokens["id_token"])
    assert tokens["expires_in"] == 120 and access["exp"] - access["iat"] == 120
    assert id_token["exp"] - id_token["iat"] == 90
    with nixa.db.session() as s:
        row = s.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash(tokens["refresh_token"])))
    assert abs(row.expires_at - time.time() - 3600) < 60
    # the code lives 15 s in the store, not the deployment's NIXA_CODE_TTL
    r, _, _ = authorize(browser, short, scope="openid profile offline_access")  # signed in, consent given: straight back
    code = query_of(r.headers["location"])["code"]
    assert 0 < nixa.store.ttl(f"code:{token_hash(code)}") <= 15

    long = register_client(nixa, nixa_access_token_ttl=86400, nixa_id_token_ttl=86400)
    browser.cookies.clear()  # a new sign-in for the second app
    tokens = code_flow(browser, http, long, citizen)
    assert tokens["expires_in"] == nixa.settings.access_token_ttl < 86400
    id_token = _claims(tokens["id_token"])
    assert id_token["exp"] - id_token["iat"] == nixa.settings.id_token_ttl
