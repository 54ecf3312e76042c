"""/userinfo (OIDC Core §5.3): GET and POST, Bearer errors (RFC 6750 §3), claims by scope
(§5.4), the national ID only for authorised clients."""

from __future__ import annotations

import pytest

from tests.conftest import make_citizen, register_client
from tests.oidc.helpers import get_code, redeem


def tokens_for(nixa, browser, http, ask: str, citizen=None, **md) -> dict:  # noqa: ANN001
    client = register_client(nixa, **md)
    citizen = citizen or make_citizen(nixa, address="1 Tràng Tiền, Hà Nội", preferred_username="binh")
    code, verifier, _ = get_code(browser, client, citizen, scope=ask)
    r = redeem(http, client, code, verifier)
    assert r.status_code == 200, r.text
    return r.json()


def assert_invalid_token(r) -> None:  # noqa: ANN001
    assert r.status_code == 401, r.text
    www = r.headers["www-authenticate"]
    assert www.startswith("Bearer") and 'error="invalid_token"' in www
    assert r.headers["cache-control"] == "no-store"


def test_get_post_header_and_post_form_agree(nixa, browser, http):
    at = tokens_for(nixa, browser, http, "openid profile email")["access_token"]
    a = http.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    b = http.post("/userinfo", headers={"Authorization": f"Bearer {at}"})
    c = http.post("/userinfo", data={"access_token": at})
    for r in (a, b, c):
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
    assert a.json() == b.json() == c.json()


def test_token_sent_twice_is_invalid_request(nixa, browser, http):
    at = tokens_for(nixa, browser, http, "openid")["access_token"]
    r = http.post("/userinfo", headers={"Authorization": f"Bearer {at}"}, data={"access_token": at})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_missing_token_is_401_with_bearer_challenge(http):
    for r in (http.get("/userinfo"), http.post("/userinfo")):
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "x" * 9000])
def test_invalid_token_is_401_invalid_token(http, token):
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}))
    r = http.post("/userinfo", data={"access_token": token})
    if len(token) > 4096:  # over the parameter limit: refused before it is looked at
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    else:
        assert_invalid_token(r)


def test_wrong_scheme_is_refused(nixa, browser, http):
    at = tokens_for(nixa, browser, http, "openid")["access_token"]
    r = http.get("/userinfo", headers={"Authorization": f"Basic {at}"})
    assert r.status_code in (400, 401)
    assert "www-authenticate" in r.headers


def test_id_token_as_access_token_is_refused(nixa, browser, http):
    tokens = tokens_for(nixa, browser, http, "openid profile")
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['id_token']}"}))


def test_token_without_openid_scope_is_refused(nixa, http):
    svc = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[],
                          scope="openid roles")
    r = http.post("/token", data={"grant_type": "client_credentials", "scope": "roles"}, auth=(svc.client_id, svc.secret))
    at = r.json()["access_token"]
    r = http.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


SCOPES = {
    "profile": {"name", "given_name", "family_name", "birthdate", "gender", "preferred_username"},
    "email": {"email", "email_verified"},
    "phone": {"phone_number", "phone_number_verified"},
    "address": {"address"},
}


@pytest.mark.parametrize("scope", list(SCOPES))
def test_scope_to_claims_mapping(nixa, browser, http, scope):
    at = tokens_for(nixa, browser, http, f"openid {scope}")["access_token"]
    body = http.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).json()
    keys = set(body) - {"sub"}
    assert SCOPES[scope] <= keys, (scope, body)
    others = set().union(*(v for k, v in SCOPES.items() if k != scope))
    assert not (keys & others), (scope, body)
    assert "national_id" not in body
    if scope == "address":
        assert isinstance(body["address"], dict) and body["address"]["formatted"]
    if scope == "email":
        assert body["email_verified"] is False  # a local test account's email is self-asserted


def test_openid_only_gives_sub_only(nixa, browser, http):
    at = tokens_for(nixa, browser, http, "openid")["access_token"]
    assert set(http.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).json()) == {"sub"}


def test_sub_matches_id_token_and_is_pairwise(nixa, browser, http):
    from joserfc import jwt

    citizen = make_citizen(nixa)
    subs = []
    for host in ("a.example.vn", "b.example.vn"):
        tokens = tokens_for(nixa, browser, http, "openid", citizen=citizen, redirect_uri=f"https://{host}/cb")
        ui = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        idt = jwt.decode(tokens["id_token"], nixa.keys._view().verify_set, algorithms=["ES256"]).claims
        assert ui["sub"] == idt["sub"]
        subs.append(ui["sub"])
    assert subs[0] != subs[1]  # different sectors, unlinkable


def test_national_id_only_for_authorised_clients(nixa, browser, http):
    import secrets

    from tests.conftest import Citizen, uid

    nid = "0" + "".join(secrets.choice("0123456789") for _ in range(11))
    username, password = uid("nid"), "correct-horse-battery"
    pid = nixa.people.add_local_account(username, password, {"name": "Trần Văn An"}, national_id=nid)
    citizen = Citizen(username, password, pid)
    ask = "openid profile national_id"
    md = {"scope": "openid profile national_id"}
    unauth = tokens_for(nixa, browser, http, ask, citizen=citizen, **md)
    body = http.get("/userinfo", headers={"Authorization": f"Bearer {unauth['access_token']}"}).json()
    assert "national_id" not in body and body["name"] == "Trần Văn An"
    auth = tokens_for(nixa, browser, http, ask, citizen=citizen, nixa_national_id_authorized=True, **md)
    body = http.get("/userinfo", headers={"Authorization": f"Bearer {auth['access_token']}"}).json()
    assert body.get("national_id") == nid


def test_access_tokens_carry_no_correlatable_person_reference(nixa, browser, http):  # noqa: ANN001
    """A JWT access token is readable by the client: nothing in it may identify the person
    across agencies (pairwise sub only; the internal reference is sealed per token)."""
    import json

    from joserfc import jwt as jose_jwt

    from tests.conftest import code_flow, make_citizen, register_client

    citizen = make_citizen(nixa)
    a = register_client(nixa, redirect_uri="https://thue.example.vn/cb", nixa_first_party=True)
    b = register_client(nixa, redirect_uri="https://bhxh.example.vn/cb", nixa_first_party=True)
    flow_a, flow_b = code_flow(browser, http, a, citizen), code_flow(browser, http, b, citizen)
    tok_a, tok_b = flow_a["access_token"], flow_b["access_token"]
    id_a = jose_jwt.decode(flow_a["id_token"], nixa.keys._view().verify_set).claims
    id_b = jose_jwt.decode(flow_b["id_token"], nixa.keys._view().verify_set).claims
    assert id_a["sid"] != id_b["sid"] and id_a["sub"] != id_b["sub"]  # one SSO session, nothing to join on
    claims_a = jose_jwt.decode(tok_a, nixa.keys._view().verify_set).claims
    claims_b = jose_jwt.decode(tok_b, nixa.keys._view().verify_set).claims
    shared = {k for k in claims_a if k in claims_b and claims_a[k] == claims_b[k]}
    assert shared <= {"iss", "aud", "scope", "iat", "exp", "auth_time", "acr", "amr"}, shared
    assert citizen.person_id not in json.dumps(claims_a) + json.dumps(claims_b)
    for token in (tok_a, tok_b):  # and UserInfo still finds the person
        assert http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).json()["email"].startswith(citizen.username)
