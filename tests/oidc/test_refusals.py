"""Every refused request carries a reference that is in the audit log, with the catalogue's
reason (idp/ops.py Refusals, idp/oidc/errors.py); scopes NIXA would drop are refused for a
client that opts in (nixa_refuse_unknown_scopes), and still dropped, as documented, otherwise."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from idp.oidc.errors import CATALOGUE
from idp.store.models import AuditEvent
from tests.conftest import authorize, make_citizen, query_of, register_client
from tests.oidc.helpers import auth_of, get_code, redeem, token_call

DESCRIPTION_CHARS = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")  # RFC 6749 §5.2


def rejected(nixa, request_id: str) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == "request.rejected").order_by(AuditEvent.id.desc()).limit(200))
        return [e for e in rows if e.data.get("request_id") == request_id]


def audited_reference(nixa, response) -> AuditEvent:  # noqa: ANN001
    """The JSON body's reference is the response's request id, and one audit event carries it."""
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"], body
    events = rejected(nixa, body["request_id"])
    assert len(events) == 1, events
    assert events[0].data["error"] == body["error"] and events[0].data["status"] == response.status_code
    return events[0]


def test_a_token_error_names_its_reference_and_reason_in_the_audit_log(nixa, http):
    client = register_client(nixa)
    r = redeem(http, client, "never-issued-code", "v" * 43)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    event = audited_reference(nixa, r)
    assert event.data["reason"] == "code_unknown" and event.client_id == client.client_id and event.ip


def test_a_wrong_secret_is_audited_with_its_reason_and_no_secret(nixa, http):
    client = register_client(nixa)
    r = http.post("/introspect", data={"token": "x"}, auth=(client.client_id, "not-the-secret-at-all"))
    assert r.status_code == 401
    event = audited_reference(nixa, r)
    assert event.data["reason"] == "client_secret_wrong" and event.client_id == client.client_id
    assert "not-the-secret-at-all" not in str(event.data)


def test_userinfo_and_parse_errors_carry_their_reference(nixa, http):
    no_token = http.get("/userinfo")
    assert no_token.status_code == 401 and audited_reference(nixa, no_token).data["reason"] == "token_missing"
    garbage = http.get("/userinfo", headers={"Authorization": "Bearer a.b.c"})
    assert garbage.status_code == 401 and audited_reference(nixa, garbage).data["reason"] == "token_invalid"
    twice = http.post("/token", content="grant_type=a&grant_type=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 400 and audited_reference(nixa, twice).data["reason"] == "param_repeated"


@pytest.mark.parametrize("data, reason", [
    ({"grant_type": "urn:nixa:nothing"}, "grant_type_unsupported"),
    ({"grant_type": "authorization_code"}, "code_missing"),
    ({"grant_type": "refresh_token"}, "refresh_missing"),
    ({"grant_type": "refresh_token", "refresh_token": "never-issued"}, "refresh_unknown"),
])
def test_refusals_authlib_makes_get_the_catalogue_reason(nixa, http, data, reason):
    client = register_client(nixa)
    r = token_call(http, client, **data)
    assert r.status_code == 400
    event = audited_reference(nixa, r)
    assert event.data["reason"] == reason and reason in CATALOGUE
    assert r.json()["error"] == CATALOGUE[reason].error


def test_a_wrong_code_verifier_is_told_and_audited(nixa, browser, http):
    client = register_client(nixa)
    code, _, _ = get_code(browser, client, make_citizen(nixa))
    r = redeem(http, client, code, "w" * 43)
    assert r.status_code == 400 and audited_reference(nixa, r).data["reason"] == "code_verifier_wrong"


def test_an_error_redirect_carries_the_reference_of_its_audit_event(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, code_challenge=None, code_challenge_method=None)
    assert r.status_code == 303
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and cb["state"] == q["state"] and cb["iss"]
    assert cb["request_id"] == r.headers["x-request-id"]
    events = rejected(nixa, cb["request_id"])
    assert [e.data["reason"] for e in events] == ["pkce_required"] and events[0].client_id == client.client_id


def test_an_error_page_shows_the_reference_of_its_audit_event(nixa, browser):
    r = browser.get("/authorize", params={"client_id": "nobody-registered-this", "response_type": "code"})
    assert r.status_code == 400
    reference = r.headers["x-request-id"]
    assert reference in r.text
    events = rejected(nixa, reference)
    assert [e.data["reason"] for e in events] == ["unknown_client"] and events[0].client_id == "nobody-registered-this"


def test_each_bad_logout_request_says_which_rule_it_broke(nixa, browser):
    client = register_client(nixa)
    tokens = {}
    for params, reason in [
        ({"id_token_hint": "a.b.c"}, "logout_hint_invalid"),
        ({"post_logout_redirect_uri": "https://elsewhere.example/bye", "client_id": client.client_id}, "logout_redirect_not_registered"),
    ]:
        r = browser.get("/logout", params=params)
        assert r.status_code == 400
        events = rejected(nixa, r.headers["x-request-id"])
        assert [e.data["reason"] for e in events] == [reason]
        tokens[reason] = r.text
    assert tokens["logout_hint_invalid"] != tokens["logout_redirect_not_registered"]


# ---- dropped scopes: silent by default (documented), refused on request ----------------------------


def test_by_default_scopes_the_client_may_not_have_are_dropped_silently_as_documented(nixa, browser, http):
    from idp.reference import claims_markdown, errors_markdown

    client = register_client(nixa)  # registered for openid profile email phone address offline_access
    code, verifier, _ = get_code(browser, client, make_citizen(nixa), scope="openid profile national_id roles no_such_scope")
    granted = redeem(http, client, code, verifier).json()["scope"].split()
    assert set(granted) == {"openid", "profile"}
    assert "**dropped silently**" in claims_markdown() and "nixa_refuse_unknown_scopes" in claims_markdown()
    assert "dropped, not refused" in errors_markdown()


def test_a_client_that_opts_in_is_refused_the_scopes_it_would_lose(nixa, browser, http):
    client = register_client(nixa, nixa_refuse_unknown_scopes=True)
    r, q, _ = authorize(browser, client, scope="openid profile national_id no_such_scope")
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_scope" and cb["state"] == q["state"]
    assert cb["error_description"] == "Scope(s) not allowed for this client: national_id no_such_scope"
    assert [e.data["reason"] for e in rejected(nixa, cb["request_id"])] == ["scope_not_allowed"]
    # What it is registered for still works.
    ok, _, _ = authorize(browser, client, scope="openid profile")
    assert "error" not in query_of(ok.headers["location"])


def test_the_opt_in_refusal_at_par_and_client_credentials_and_its_description_is_ascii(nixa, http):
    client = register_client(nixa, nixa_refuse_unknown_scopes=True, grant_types=["authorization_code", "client_credentials"])
    r = http.post("/par", data={"response_type": "code", "redirect_uri": client.redirect_uri, "scope": "openid hồ_sơ",
                                "code_challenge": "x" * 43, "code_challenge_method": "S256"}, auth=auth_of(client))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    description = r.json()["error_description"]
    assert DESCRIPTION_CHARS.match(description) and description.startswith("Scope(s) not allowed for this client: h")
    assert audited_reference(nixa, r).data["reason"] == "scope_not_allowed"
    cc = token_call(http, client, grant_type="client_credentials", scope="profile roles")
    assert cc.status_code == 400 and cc.json()["error"] == "invalid_scope" and "roles" in cc.json()["error_description"]


def test_the_opt_in_flag_is_metadata_refused_when_not_a_boolean(nixa):
    from idp.oidc.metadata import InvalidClientMetadata

    with pytest.raises(InvalidClientMetadata, match="nixa_refuse_unknown_scopes"):
        register_client(nixa, nixa_refuse_unknown_scopes="yes")


def test_refresh_refusals_are_told_apart(nixa, browser, http):
    client = register_client(nixa)
    code, verifier, _ = get_code(browser, client, make_citizen(nixa), scope="openid offline_access")
    first = redeem(http, client, code, verifier).json()["refresh_token"]
    assert token_call(http, client, grant_type="refresh_token", refresh_token=first).status_code == 200
    reused = token_call(http, client, grant_type="refresh_token", refresh_token=first)
    assert "already used" in reused.json()["error_description"]
    assert audited_reference(nixa, reused).data["reason"] == "refresh_reused"
    again = token_call(http, client, grant_type="refresh_token", refresh_token=first)  # the grant is revoked now
    assert audited_reference(nixa, again).data["reason"] == "refresh_grant_revoked"
    other = register_client(nixa)
    theirs = token_call(http, other, grant_type="refresh_token", refresh_token=first)
    assert audited_reference(nixa, theirs).data["reason"] == "refresh_unknown"  # nothing said about another client's token


def test_a_scanner_s_probes_of_unknown_paths_are_counted_not_written_to_the_audit_chain(nixa, app, http):
    """Attacker: a scanner (or anyone) sending requests for paths NIXA does not have, to grow
    the audit chain by one signed row and one commit per probe. A path no route knows is a 404
    counted in the request metrics (route "unmatched"), not an audit event; a refusal on a real
    route still is, with its reference (the tests above)."""
    def audit_rows() -> int:
        with nixa.db.session() as s:
            return len(s.scalars(select(AuditEvent.id).where(AuditEvent.type == "request.rejected")).all())

    def unmatched_404s() -> float:
        from starlette.testclient import TestClient

        with TestClient(app, client=("127.0.0.1", 50000)) as scraper:  # the metrics' allowed network
            text = scraper.get("/metrics").text
        found = re.search(r'nixa_http_requests_total\{method="GET",route="unmatched",status="404"\} ([0-9.e+]+)', text)
        return float(found.group(1)) if found else 0.0

    before_rows, before_count = audit_rows(), unmatched_404s()
    for path in ("/wp-login.php", "/.env", "/static/no-such-file.css", "/admin/../etc/passwd"):
        r = http.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["x-request-id"]
    assert audit_rows() == before_rows
    assert unmatched_404s() >= before_count + 3  # every one counted (a static miss may count as "static")
    refused = http.get("/userinfo")  # a real route's refusal: still audited
    assert refused.status_code == 401 and audit_rows() == before_rows + 1
