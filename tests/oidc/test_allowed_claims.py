"""Allowed claims (`nixa_allowed_claims`): an agency app registered for some claims receives only
those, at UserInfo (and in verified_claims) and never in the ID token, whatever its scopes and a
request's `claims` parameter ask; the consent page lists only what will be released; the access
log records only what was; unknown claim names are refused (tests/admin/test_api_allowed_claims.py:
wherever metadata comes in); absent, nothing changes."""

from __future__ import annotations

import json
import time

import pytest
from joserfc import jwt

from connectors.base import VerifiedAttribute
from idp.identity.claims import release
from idp.oidc.metadata import InvalidClientMetadata, validate_metadata
from tests.conftest import authorize, code_flow, form_action, hidden, make_citizen, register_client

ASKING_FOR_MORE = json.dumps({"userinfo": {"birthdate": {"essential": True}, "phone_number": None, "email": None},
                              "id_token": {"birthdate": {"essential": True}, "phone_number": None}})


def _userinfo(http, tokens: dict) -> dict:  # noqa: ANN001
    r = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_app_limited_to_the_name_cannot_get_birthdate_or_phone_whatever_it_asks(nixa, browser, http):  # noqa: ANN001
    app = register_client(nixa, nixa_first_party=True, nixa_allowed_claims=["name"])
    citizen = make_citizen(nixa)
    tokens = code_flow(browser, http, app, citizen, scope="openid profile email phone address", claims=ASKING_FOR_MORE)
    assert set(_userinfo(http, tokens)) == {"sub", "name"}
    id_token = jwt.decode(tokens["id_token"], nixa.keys._view().verify_set).claims
    assert not {"name", "birthdate", "phone_number", "email", "gender"} & set(id_token)
    # The citizen's access log shows what was released, and only that.
    from idp.account import service as account

    released = [r.claims for r in account.access_log(nixa, citizen.person_id, account.AccessLogFilter())[0] if r.client_id == app.client_id]
    assert sorted(["name", "sub"]) in [sorted(c) for c in released]
    assert not any("birthdate" in c or "phone_number" in c for c in released)


def test_a_verified_claim_is_limited_too_and_its_verified_flag_follows_it(nixa):  # noqa: ANN001
    now = time.time()
    attrs = {n: VerifiedAttribute(n, v, "population", now) for n, v in
             (("name", "Trần Văn Cường"), ("birthdate", "1980-02-03"), ("phone_number", "+84912000111"))}
    assert release(attrs, {"profile", "phone"}, national_id_allowed=False, allowed={"phone_number"}) == \
        {"phone_number": "+84912000111", "phone_number_verified": True}
    assert set(release(attrs, {"profile", "phone"}, national_id_allowed=False, allowed=None)) == \
        {"name", "birthdate", "phone_number", "phone_number_verified"}
    assert release(attrs, {"profile"}, national_id_allowed=False, allowed=set()) == {}


def test_absent_the_app_gets_everything_its_scopes_release(nixa, browser, http):  # noqa: ANN001
    app = register_client(nixa, nixa_first_party=True)
    tokens = code_flow(browser, http, app, make_citizen(nixa), scope="openid profile phone")
    assert {"name", "birthdate", "gender", "phone_number"} <= set(_userinfo(http, tokens))


def test_the_consent_page_lists_only_what_will_be_released(nixa, browser):  # noqa: ANN001
    app = register_client(nixa, nixa_allowed_claims=["name", "phone_number"])  # not first-party: consent is asked
    citizen = make_citizen(nixa)
    r, _, _ = authorize(browser, app, scope="openid profile email phone")
    page = browser.get(r.headers["location"]).text
    r = browser.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                         "password": citizen.password})
    consent = browser.get(r.headers["location"]).text
    assert "/consent" in consent
    listed = consent.split('<ul class="scopes">', 1)[1].split("</ul>", 1)[0]
    assert "Họ và tên" in listed
    assert "Số điện thoại" in listed
    assert "ngày sinh" not in listed.lower() and "giới tính" not in listed.lower() and "thư điện tử" not in listed.lower()


@pytest.mark.parametrize("value", [["name", "favourite_colour"], "name", [1], ["name", "name"]])
def test_unknown_or_malformed_claim_lists_are_refused(value):  # noqa: ANN001
    with pytest.raises(InvalidClientMetadata) as refused:
        validate_metadata({"client_id": "c", "redirect_uris": ["https://a.example.vn/cb"], "nixa_allowed_claims": value})
    assert refused.value.error == "invalid_client_metadata" and "nixa_allowed_claims" in str(refused.value)
