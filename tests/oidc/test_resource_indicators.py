"""Tokens bound to their audience: registered resource servers, RFC 8707 `resource` at
/authorize, /par and /token, `aud` in the JWT access token (RFC 9068), and who may introspect."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from idp.oidc.resources import InvalidResourceServer
from tests.conftest import authorize, make_citizen, query_of, register_client, uid
from tests.oidc.helpers import ISSUER, get_code, introspect, redeem, token_call, userinfo
from tests.oidc.test_audit import events_for
from tests.oidc.test_par import push

USERINFO = f"{ISSUER}/userinfo"


@dataclass
class Api:
    identifier: str
    introspector: object  # the RegisteredClient the API authenticates with at /introspect


def register_api(nixa, host: str, scopes: list[str]) -> Api:  # noqa: ANN001
    introspector = register_client(nixa, grant_types=["client_credentials"], redirect_uris=[], post_logout_redirect_uris=[],
                                   response_types=[], scope="", nixa_first_party=True)  # the old way to let an API introspect
    identifier = f"https://{host}/{uid('api')}"
    nixa.resources.upsert(identifier, name=f"API {host}", scopes=scopes, client_id=introspector.client_id)
    return Api(identifier, introspector)


@pytest.fixture()
def tax(nixa) -> Api:  # noqa: ANN001
    return register_api(nixa, "api.thue.example.vn", ["tax:read"])


@pytest.fixture()
def insurance(nixa) -> Api:  # noqa: ANN001
    return register_api(nixa, "api.bhxh.example.vn", ["insurance:read"])


@pytest.fixture()
def portal(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, scope="openid profile offline_access tax:read insurance:read")


@pytest.fixture()
def citizen(nixa):  # noqa: ANN001, ANN201
    return make_citizen(nixa)


def access_claims(nixa, token: str) -> dict:  # noqa: ANN001
    return nixa.keys.verify(token).claims


def tokens_for(browser, http, client, citizen, *, scope: str, resource=None, token_resource=None) -> dict:  # noqa: ANN001
    code, verifier, _ = get_code(browser, client, citizen, scope=scope, resource=resource)
    extra = {"resource": token_resource} if token_resource else {}
    r = redeem(http, client, code, verifier, **extra)
    assert r.status_code == 200, r.text
    return r.json()


# ---- aud and scope ----------------------------------------------------------------------------


def test_a_token_for_a_resource_has_that_audience_and_only_its_scopes(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid profile offline_access tax:read", resource=tax.identifier)
    claims = access_claims(nixa, tokens["access_token"])
    assert claims["aud"] == tax.identifier
    assert claims["scope"] == "tax:read" and tokens["scope"] == "tax:read"
    assert tokens["id_token"] and tokens["refresh_token"]  # the sign-in still yields its ID token and refresh token


def test_a_token_without_resource_is_for_userinfo_and_works_there(nixa, browser, http, portal, citizen):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid profile")
    assert access_claims(nixa, tokens["access_token"])["aud"] == USERINFO
    r = userinfo(http, tokens["access_token"])
    assert r.status_code == 200 and r.json()["sub"]


def test_a_token_for_a_resource_server_only_is_refused_at_userinfo(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid profile tax:read", resource=tax.identifier)
    r = userinfo(http, tokens["access_token"])
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_token_for_a_resource_and_userinfo_works_at_both(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid profile tax:read", resource=[tax.identifier, USERINFO])
    assert access_claims(nixa, tokens["access_token"])["aud"] == [tax.identifier, USERINFO]
    assert userinfo(http, tokens["access_token"]).status_code == 200
    assert introspect(http, tax.introspector, tokens["access_token"]).json()["active"] is True


# ---- introspection: the token's client and its audience, nobody else --------------------------


def test_agency_a_token_replayed_at_agency_b_is_inactive_for_b(nixa, browser, http, portal, citizen, tax, insurance):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid tax:read", resource=tax.identifier)
    access = tokens["access_token"]
    mine = introspect(http, tax.introspector, access).json()
    assert mine["active"] is True and mine["aud"] == tax.identifier and mine["scope"] == "tax:read"
    assert introspect(http, insurance.introspector, access).json() == {"active": False}
    refused = events_for(nixa, type="introspection.refused", client_id=insurance.introspector.client_id)
    assert refused and refused[-1].data["token_client_id"] == portal.client_id
    assert introspect(http, portal, access).json()["active"] is True  # its own client may


def test_a_first_party_client_neither_client_nor_audience_cannot_introspect(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid offline_access tax:read", resource=tax.identifier)
    first_party = register_client(nixa, nixa_first_party=True)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(http, first_party, token).json() == {"active": False}


def test_a_resource_server_never_sees_a_refresh_token(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid offline_access tax:read", resource=tax.identifier)
    assert introspect(http, tax.introspector, tokens["refresh_token"]).json() == {"active": False}


def test_a_removed_resource_server_can_no_longer_introspect_nor_be_asked_for(nixa, browser, http, portal, citizen, tax):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid tax:read", resource=tax.identifier)
    assert nixa.resources.remove(tax.identifier)
    assert introspect(http, tax.introspector, tokens["access_token"]).json() == {"active": False}
    r, _, _ = authorize(browser, portal, scope="openid tax:read", resource=tax.identifier)
    assert query_of(r.headers["location"])["error"] == "invalid_target"


# ---- invalid_target -----------------------------------------------------------------------------


BAD_RESOURCES = ["https://unknown.example.vn/api", "relative/path", "https://api.example.vn/x#frag"]


@pytest.mark.parametrize("resource", BAD_RESOURCES)
def test_unknown_or_malformed_resource_at_authorize(nixa, browser, portal, resource):
    r, q, _ = authorize(browser, portal, scope="openid", resource=resource)
    assert r.status_code == 303
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_target" and cb["state"] == q["state"]


@pytest.mark.parametrize("resource", BAD_RESOURCES)
def test_unknown_or_malformed_resource_at_par(nixa, http, portal, resource):
    r, _ = push(http, portal, resource=resource)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_a_scope_the_resource_does_not_accept_is_invalid_target(nixa, browser, http, portal, tax):
    r, _, _ = authorize(browser, portal, scope="openid insurance:read", resource=tax.identifier)
    assert query_of(r.headers["location"])["error"] == "invalid_target"
    r, _ = push(http, portal, scope="openid insurance:read", resource=tax.identifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_several_resources_at_par(nixa, browser, http, portal, citizen, tax, insurance):
    from tests.conftest import sign_in_local

    r, verifier = push(http, portal, scope="openid tax:read insurance:read", resource=[tax.identifier, insurance.identifier])
    assert r.status_code == 201, r.text
    a = browser.get("/authorize", params={"client_id": portal.client_id, "request_uri": r.json()["request_uri"]})
    cb = query_of(sign_in_local(browser, a.headers["location"], citizen).headers["location"])
    tokens = redeem(http, portal, cb["code"], verifier).json()
    claims = access_claims(nixa, tokens["access_token"])
    assert claims["aud"] == [tax.identifier, insurance.identifier]
    assert set(claims["scope"].split()) == {"tax:read", "insurance:read"}


def test_unknown_resource_at_token(nixa, browser, http, portal, citizen):
    code, verifier, _ = get_code(browser, portal, citizen, scope="openid")
    r = redeem(http, portal, code, verifier, resource="https://unknown.example.vn/api")
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_widening_at_token_is_refused(nixa, browser, http, portal, citizen, tax, insurance):
    code, verifier, _ = get_code(browser, portal, citizen, scope="openid tax:read", resource=tax.identifier)
    r = redeem(http, portal, code, verifier, resource=insurance.identifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    # granted without resource (UserInfo): an API cannot be added at /token either
    code, verifier, _ = get_code(browser, portal, citizen, scope="openid tax:read")
    r = redeem(http, portal, code, verifier, resource=tax.identifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_narrowing_at_token_and_at_refresh(nixa, browser, http, portal, citizen, tax, insurance):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid offline_access tax:read insurance:read",
                        resource=[tax.identifier, insurance.identifier], token_resource=tax.identifier)
    claims = access_claims(nixa, tokens["access_token"])
    assert claims["aud"] == tax.identifier and claims["scope"] == "tax:read"
    r = token_call(http, portal, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=insurance.identifier)
    assert r.status_code == 200, r.text
    refreshed = r.json()
    claims = access_claims(nixa, refreshed["access_token"])
    assert claims["aud"] == insurance.identifier and claims["scope"] == "insurance:read"
    # the rotated refresh token keeps the whole grant: no resource means every granted one
    r = token_call(http, portal, grant_type="refresh_token", refresh_token=refreshed["refresh_token"])
    assert access_claims(nixa, r.json()["access_token"])["aud"] == [tax.identifier, insurance.identifier]


def test_widening_at_refresh_is_refused(nixa, browser, http, portal, citizen, tax, insurance):
    tokens = tokens_for(browser, http, portal, citizen, scope="openid offline_access tax:read", resource=tax.identifier)
    for resource in (insurance.identifier, USERINFO):
        r = token_call(http, portal, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=resource)
        assert r.status_code == 400 and r.json()["error"] == "invalid_target", resource


# ---- client credentials -------------------------------------------------------------------------


@pytest.fixture()
def service(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[],
                           scope="roles tax:read")


def test_client_credentials_for_a_resource(nixa, http, service, tax, insurance):
    r = token_call(http, service, grant_type="client_credentials", scope="tax:read roles", resource=tax.identifier)
    assert r.status_code == 200, r.text
    claims = access_claims(nixa, r.json()["access_token"])
    assert claims["aud"] == tax.identifier and claims["scope"] == "tax:read"
    assert introspect(http, tax.introspector, r.json()["access_token"]).json()["active"] is True
    assert introspect(http, insurance.introspector, r.json()["access_token"]).json() == {"active": False}


def test_client_credentials_gets_only_its_registered_scopes(nixa, http, service):
    r = token_call(http, service, grant_type="client_credentials", scope="roles profile email")
    assert r.status_code == 200 and r.json()["scope"] == "roles"


@pytest.mark.parametrize("resource, scope", [("https://unknown.example.vn/api", "tax:read"), ("urn:x#frag", "tax:read"), (None, "tax:read")])
def test_client_credentials_invalid_target(nixa, http, service, insurance, resource, scope):
    r = token_call(http, service, grant_type="client_credentials", scope=scope, resource=resource or insurance.identifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


# ---- registration -------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["api.thue.example.vn", "https://api.thue.example.vn/#x", "https:///nohost",
                                        "https://api.thue.example.vn/?q=1", f"{ISSUER}/userinfo", "https://a b"])
def test_registration_refuses_what_is_not_a_resource_identifier(nixa, identifier):
    client = register_client(nixa)
    with pytest.raises(InvalidResourceServer):
        nixa.resources.upsert(identifier, name="API", scopes=["x"], client_id=client.client_id)


def test_registration_needs_a_confidential_client(nixa):
    public = register_client(nixa, token_endpoint_auth_method="none")
    for client_id in ("no-such-client", public.client_id):
        with pytest.raises(InvalidResourceServer):
            nixa.resources.upsert(f"https://api.example.vn/{uid()}", name="API", scopes=["x"], client_id=client_id)


def test_the_consent_page_names_the_api_and_the_api_scopes_asked_for(nixa, browser, portal, citizen, tax):  # noqa: ANN001
    from tests.conftest import form_action, hidden

    r, _, _ = authorize(browser, portal, scope="openid profile tax:read", resource=tax.identifier)
    page = browser.get(r.headers["location"])
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                             "password": citizen.password})
    consent = browser.get(r.headers["location"]).text
    assert "consent" in consent
    assert "tax:read tại API api.thue.example.vn" in consent  # the API by its registered name, Vietnamese first
    # Without a resource, no API is named.
    r, _, _ = authorize(browser, portal, scope="openid profile", prompt="consent")
    again = browser.get(r.headers["location"]).text
    assert 'name="decision"' in again and "API api.thue.example.vn" not in again
