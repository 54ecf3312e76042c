"""The admin web console over HTTP: its sign-in (NIXA's own code flow, the admin API's checks on
every request), each role's pages and actions, CSRF, forms that re-render their errors, and
every action in the audit trail with the operator as its actor."""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from admin.apps import AgencyApps
from admin.auth import CONSOLE_CLIENT_ID, admin_resource
from admin.console import AREAS
from admin.console_signin import CONSOLE_COOKIE, ConsoleSessions
from admin.roles import PERMISSIONS, Role
from tests.admin.console_browser import CONSOLE, csrf_of, local, sign_in
from tests.admin.operators import new_operator
from tests.admin.test_api_people import citizen_with_id, support_rows
from tests.conftest import code_flow, register_client
from tests.oidc.test_audit import events_for
from tests.oidc.test_backchannel_logout import Receiver, app_client, verified

PAGES = {path: permission for path, _, permission in AREAS}
WHY = "Yêu cầu hỗ trợ số 7788: công dân báo mất điện thoại"


@pytest.fixture(scope="module")
def desks(app):  # noqa: ANN001, ANN201
    """One signed-in console browser per role (and its operator)."""
    out = {}
    for role in Role:
        op = new_operator(app.state.nixa, role)
        out[role] = (sign_in(app, op), op)
    yield out
    for b, _ in out.values():
        b.__exit__(None, None, None)


def _changes(nixa, what: str, target: str) -> list[dict]:  # noqa: ANN001
    return [e.data for e in events_for(nixa, type="admin.changed") if e.data.get("what") == what and e.data.get("target") == target]


def _app_form(**overrides: str) -> dict[str, str]:
    cid = "dvc-" + secrets.token_hex(4)
    form = {"client_id": cid, "client_name": "Cổng dịch vụ công thử", "redirect_uris": "https://dvc.example.vn/callback",
            "post_logout_redirect_uris": "https://dvc.example.vn/", "backchannel_logout_uri": "https://dvc.example.vn/bcl",
            "grant_authorization_code": "on", "scope": "openid profile", "token_endpoint_auth_method": "client_secret_basic"}
    form.update(overrides)
    return form


# ---- sign-in --------------------------------------------------------------------------------------


def test_an_unauthenticated_browser_is_sent_to_the_console_sign_in(app) -> None:  # noqa: ANN001
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        for path in [*PAGES, "/apps/new", "/people/abc?reason=xyz", "/audit/export.csv"]:
            r = b.get(CONSOLE + path)
            assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?next="), (path, r.status_code)
        r = b.post(CONSOLE + "/apps/new", data=_app_form(csrf="x"))
        assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?")
        r = b.get(CONSOLE + "/login", params={"next": CONSOLE + "/apps"})
        assert r.status_code == 303
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
        nixa = app.state.nixa
        assert q["client_id"] == CONSOLE_CLIENT_ID and q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        assert q["resource"] == admin_resource(nixa.settings.issuer) and q["scope"] == "openid admin"
        assert q["acr_values"].endswith("substantial") and q["state"] and q["nonce"]


def test_the_callback_refuses_a_state_it_did_not_issue_to_this_browser(app) -> None:  # noqa: ANN001
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        b.get(CONSOLE + "/login")
        r = b.get(CONSOLE + "/callback", params={"code": "x", "state": "not-ours"})
        assert r.status_code == 400 and CONSOLE_COOKIE not in r.headers.get("set-cookie", "")
        assert "Phiên đăng nhập đã hết hạn" in r.text


def test_a_sign_in_below_substantial_never_opens_the_console(app, nixa) -> None:  # noqa: ANN001
    op = new_operator(nixa, Role.SUPER_ADMIN)
    b = sign_in(app, op, totp=False)  # a password only: low
    try:
        r = b.get(CONSOLE + "/")
        assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?")
    finally:
        b.__exit__(None, None, None)


def test_a_session_whose_token_is_not_the_consoles_is_dropped(app, nixa, http) -> None:  # noqa: ANN001
    """The console checks its token exactly as the admin API does (admin/auth.authenticate): a
    valid token of another app, of a person holding a role, opens nothing."""
    from admin.roles import AdminRoles
    from tests.conftest import make_citizen

    client = register_client(nixa)
    citizen = make_citizen(nixa)
    AdminRoles(nixa.db).grant(citizen.person_id, Role.SUPER_ADMIN, by="test")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, http, client, citizen)
    cookie = ConsoleSessions(nixa).open(tokens["access_token"], tokens["id_token"], 300)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, cookies={CONSOLE_COOKIE: cookie}) as b:
        r = b.get(CONSOLE + "/apps")
        assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?")
    assert ConsoleSessions(nixa).load(cookie) is None


def test_a_person_without_a_role_gets_a_refusal_page(app, nixa) -> None:  # noqa: ANN001
    b = sign_in(app, new_operator(nixa))  # substantial, but no role
    try:
        for path in PAGES:
            r = b.get(CONSOLE + path)
            assert r.status_code == 403 and "không có vai trò quản trị" in r.text, (path, r.status_code)
    finally:
        b.__exit__(None, None, None)


def test_revoked_token_back_to_sign_in_and_logout_is_rp_initiated(app, nixa) -> None:  # noqa: ANN001
    op = new_operator(nixa, Role.AUDITOR)
    b = sign_in(app, op)
    try:
        page = b.get(CONSOLE + "/").text
        r = b.post(CONSOLE + "/logout", data={"csrf": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"].startswith("/logout?")
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
        assert q["client_id"] == CONSOLE_CLIENT_ID and q["id_token_hint"] and q["post_logout_redirect_uri"].endswith(CONSOLE + "/")
        r = b.get(r.headers["location"])  # NIXA ends the SSO session (the hint proves the app asked)
        assert r.status_code == 303 and r.headers["location"].startswith(nixa.settings.issuer + CONSOLE + "/?state=signed-out")
        r = b.get(local(r.headers["location"]))
        assert r.status_code == 200 and "Bạn đã đăng xuất" in r.text
        assert b.get(CONSOLE + "/").status_code == 303
    finally:
        b.__exit__(None, None, None)
    # A token revoked under the console (support signs the operator out everywhere): back to the sign-in.
    op2 = new_operator(nixa, Role.AUDITOR)
    b = sign_in(app, op2)
    try:
        assert b.get(CONSOLE + "/audit").status_code == 200
        from admin.people import Support

        Support(nixa).revoke_sessions({"via": "test"}, op2.person_id, "thu hồi để kiểm thử")
        r = b.get(CONSOLE + "/audit")
        assert r.status_code == 303 and r.headers["location"].startswith(CONSOLE + "/login?")
    finally:
        b.__exit__(None, None, None)


# ---- roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_sees_and_may_open_exactly_its_pages(desks, role) -> None:  # noqa: ANN001
    b, _ = desks[role]
    home = b.get(CONSOLE + "/")
    assert home.status_code == 200, home.text[:300]
    nav = re.search(r'<nav class="console-nav".*?</nav>', home.text, re.S).group()
    for path, permission in PAGES.items():
        may = role in PERMISSIONS[permission]
        assert (f'href="{CONSOLE}{path}"' in nav) is may, (role, path)
        r = b.get(CONSOLE + path)
        assert r.status_code == (200 if may else 403), (role, path, r.status_code)
        if not may:
            assert "Vai trò của bạn không được dùng" in r.text and "Traceback" not in r.text


@pytest.mark.parametrize(("role", "path", "form"), [
    (Role.AUDITOR, "/apps/new", _app_form()),
    (Role.SUPPORT, "/apps/new", _app_form()),
    (Role.CLIENT_ADMIN, "/keys/rotate", {"alg": "ES256"}),
    (Role.AUDITOR, "/keys/rotate", {"alg": "ES256"}),
    (Role.CLIENT_ADMIN, "/people/nobody/lock", {"reason": WHY}),
    (Role.CONNECTOR_ADMIN, "/audit/verify", {}),
    (Role.AUDITOR, "/connectors/population/disable", {}),
    (Role.AUDITOR, "/connectors/new", {"type": "telecom_sms", "id": "x", "cfg.base_url": "http://127.0.0.1:9", "cfg.api_key": "k"}),
    (Role.SUPPORT, "/connectors/population/edit", {"cfg.base_url": "http://127.0.0.1:9"}),
    (Role.AUDITOR, "/keys/no-such-kid/revoke", {"reason": WHY, "confirm": "yes"}),
    (Role.CONNECTOR_ADMIN, "/keys/no-such-kid/revoke", {"reason": WHY, "confirm": "yes"}),
    (Role.AUDITOR, "/people/nobody/merge", {"reason": WHY, "source": "somebody"}),
])
def test_an_action_outside_the_role_is_refused_and_changes_nothing(desks, nixa, role, path, form) -> None:  # noqa: ANN001
    b, _ = desks[role]
    before = len(events_for(nixa, type="admin.changed"))
    r = b.post(CONSOLE + path, data={**form, "csrf": csrf_of(b.get(CONSOLE + "/").text)})
    assert r.status_code == 403 and "Vai trò của bạn không được dùng" in r.text
    assert len(events_for(nixa, type="admin.changed")) == before


def test_a_post_without_this_sessions_csrf_token_is_refused(desks, nixa) -> None:  # noqa: ANN001
    b, _ = desks[Role.CLIENT_ADMIN]
    other, _ = desks[Role.SUPER_ADMIN]
    for token in ("", "0" * 64, csrf_of(other.get(CONSOLE + "/").text)):
        form = _app_form(csrf=token)
        r = b.post(CONSOLE + "/apps/new", data=form)
        assert r.status_code == 403 and "Biểu mẫu đã hết hạn" in r.text
        assert nixa.clients.get(form["client_id"]) is None


# ---- agency apps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "says"), [
    ("redirect_uris", "http://dvc.example.vn/callback", "redirect"),
    ("redirect_uris", "https://dvc.example.vn/callback#x", "redirect"),
    ("redirect_uris", "https://*.example.vn/callback", "redirect"),
    ("redirect_uris", "", "redirect_uris"),
    ("backchannel_logout_uri", "http://dvc.example.vn/bcl", "backchannel"),
    ("scope", "openid admin", "admin"),
    ("token_endpoint_auth_method", "magic", "token_endpoint_auth_method"),
    ("nixa_access_token_ttl", "abc", "nixa_access_token_ttl"),
    ("nixa_access_token_ttl", "5", "nixa_access_token_ttl"),
    ("grant_authorization_code", "", "grant_types"),
])
def test_an_invalid_app_form_comes_back_with_its_message_and_values(desks, nixa, field, value, says) -> None:  # noqa: ANN001
    b, _ = desks[Role.CLIENT_ADMIN]
    form = _app_form(**{field: value})
    if not value:
        form.pop(field)
    r = b.post(CONSOLE + "/apps/new", data={**form, "csrf": csrf_of(b.get(CONSOLE + "/apps/new").text)})
    assert r.status_code in (400, 409), (r.status_code, r.text[:300])
    assert 'role="alert"' in r.text and says in r.text.lower(), r.text[:2000]
    assert f'value="{form["client_id"]}"' in r.text  # the operator's input is kept
    assert nixa.clients.get(form["client_id"]) is None


def test_onboard_edit_rotate_disable_and_delete_an_app_each_audited_with_the_operator(desks, nixa, http) -> None:  # noqa: ANN001
    b, op = desks[Role.CLIENT_ADMIN]
    form = _app_form(nixa_access_token_ttl="600", nixa_first_party="on")
    cid = form["client_id"]
    r = b.post(CONSOLE + "/apps/new", data={**form, "csrf": csrf_of(b.get(CONSOLE + "/apps/new").text)})
    assert r.status_code == 201, r.text[:500]
    secret = re.search(r'id="client-secret">([^<]+)<', r.text).group(1)
    assert r.headers["cache-control"] == "no-store" and len(secret) >= 32
    app_row = nixa.clients.get(cid)
    assert app_row is not None and app_row.metadata["nixa_access_token_ttl"] == 600 and app_row.metadata["nixa_first_party"] is True
    assert secret not in b.get(f"{CONSOLE}/apps/{cid}").text  # shown once
    [created] = _changes(nixa, "client.create", cid)
    assert created["actor"]["person_id"] == op.person_id and created["actor"]["ui"] == "console"
    assert secret not in json.dumps(created)

    edit = b.get(f"{CONSOLE}/apps/{cid}/edit").text
    r = b.post(f"{CONSOLE}/apps/{cid}/edit", data={**form, "redirect_uris": "https://dvc.example.vn/callback\nhttps://dvc.example.vn/cb2",
                                                    "csrf": csrf_of(edit)})
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/apps/{cid}?notice=updated"
    assert nixa.clients.get(cid).metadata["redirect_uris"] == ["https://dvc.example.vn/callback", "https://dvc.example.vn/cb2"]
    [updated] = _changes(nixa, "client.update", cid)
    assert updated["before"]["metadata"]["redirect_uris"] == ["https://dvc.example.vn/callback"]

    page = b.get(f"{CONSOLE}/apps/{cid}").text
    r = b.post(f"{CONSOLE}/apps/{cid}/secret", data={"overlap": "86400", "csrf": csrf_of(page)})
    assert r.status_code == 200 and "khóa cũ còn hiệu lực đến" in r.text
    new_secret = re.search(r'id="client-secret">([^<]+)<', r.text).group(1)
    for s in (secret, new_secret):  # both valid during the overlap
        t = http.post("/token", data={"grant_type": "authorization_code", "code": "nope", "redirect_uri": "https://dvc.example.vn/callback"},
                      auth=(cid, s))
        assert t.json()["error"] == "invalid_grant", t.text  # the client authenticated; only the code is wrong
    assert _changes(nixa, "client.rotate_secret", cid)[0]["after"]["previous_secret_expires_at"] is not None

    assert b.post(f"{CONSOLE}/apps/{cid}/disable", data={"csrf": csrf_of(page)}).status_code == 303
    assert AgencyApps(nixa).get(cid)["disabled"] and _changes(nixa, "client.disable", cid)
    assert b.post(f"{CONSOLE}/apps/{cid}/enable", data={"csrf": csrf_of(page)}).status_code == 303
    assert not AgencyApps(nixa).get(cid)["disabled"]
    r = b.post(f"{CONSOLE}/apps/{cid}/delete", data={"csrf": csrf_of(page)})  # without the confirmation
    assert r.status_code == 400 and "xác nhận" in r.text and nixa.clients.get(cid) is not None
    r = b.post(f"{CONSOLE}/apps/{cid}/delete", data={"csrf": csrf_of(page), "confirm": "yes"})
    assert r.status_code == 303 and nixa.clients.get(cid) is None
    assert _changes(nixa, "client.delete", cid)[0]["actor"]["person_id"] == op.person_id


def test_the_console_client_itself_cannot_be_changed_from_the_console(desks, nixa) -> None:  # noqa: ANN001
    b, _ = desks[Role.SUPER_ADMIN]
    page = b.get(f"{CONSOLE}/apps/{CONSOLE_CLIENT_ID}")
    assert page.status_code == 200 and f"{CONSOLE_CLIENT_ID}/disable" not in page.text
    r = b.post(f"{CONSOLE}/apps/{CONSOLE_CLIENT_ID}/disable", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 409 and not AgencyApps(nixa).get(CONSOLE_CLIENT_ID)["disabled"]


# ---- people ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.server.shutdown()


def test_support_needs_a_reason_to_search(desks, nixa) -> None:  # noqa: ANN001
    b, _ = desks[Role.SUPPORT]
    citizen, national_id, _ = citizen_with_id(nixa)
    r = b.get(CONSOLE + "/people", params={"national_id": national_id, "reason": ""})
    assert r.status_code == 400 and 'role="alert"' in r.text and f'value="{national_id}"' in r.text
    assert citizen.person_id not in r.text
    r = b.get(CONSOLE + "/people", params={"national_id": "123", "reason": WHY})
    assert r.status_code == 400 and "12 digits" in r.text


def test_support_finds_and_locks_a_person_the_portal_is_told_and_the_citizen_sees_it(app, desks, nixa, http, receiver) -> None:  # noqa: ANN001
    b, agent = desks[Role.SUPPORT]
    citizen, national_id, _ = citizen_with_id(nixa)
    path, uri = receiver.endpoint()
    portal = app_client(nixa, uri)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as cb:
        tokens = code_flow(cb, http, portal, citizen)
    sid = verified(http, tokens["id_token"]).claims["sid"]

    r = b.get(CONSOLE + "/people", params={"national_id": national_id, "reason": WHY})
    assert r.status_code == 200 and f"{CONSOLE}/people/{citizen.person_id}?" in r.text
    page = b.get(f"{CONSOLE}/people/{citizen.person_id}", params={"reason": WHY})
    assert page.status_code == 200 and portal.client_id in page.text and "local" in page.text  # the session and the link
    r = b.post(f"{CONSOLE}/people/{citizen.person_id}/lock", data={"csrf": csrf_of(page.text), "reason": "ab"})
    assert r.status_code == 400 and 'role="alert"' in r.text and nixa.people.get(citizen.person_id).status == "active"
    r = b.post(f"{CONSOLE}/people/{citizen.person_id}/lock", data={"csrf": csrf_of(page.text), "reason": WHY})
    assert r.status_code == 303, r.text[:300]
    [logout] = receiver.wait_for(path, 1)
    assert verified(http, logout).claims["sid"] == sid  # back-channel logout at the portal
    assert nixa.people.get(citizen.person_id).status == "locked"
    after = b.get(local(r.headers["location"]))
    assert 'id="person-status">Đã khóa' in after.text and 'id="no-sessions"' in after.text
    [lock] = _changes(nixa, "person.lock", citizen.person_id)
    assert lock["actor"]["person_id"] == agent.person_id and lock["reason"] == WHY and lock["actor"]["ui"] == "console"
    assert ["support_lock", WHY] in [row.claims for row in support_rows(nixa, citizen.person_id)]
    r = b.post(f"{CONSOLE}/people/{citizen.person_id}/unlock", data={"csrf": csrf_of(after.text), "reason": "đã xác minh lại tại quầy"})
    assert r.status_code == 303 and nixa.people.get(citizen.person_id).status == "active"


# ---- audit, connectors, keys ----------------------------------------------------------------------


def test_the_auditor_filters_exports_and_verifies_the_trail(desks, nixa) -> None:  # noqa: ANN001
    b, _ = desks[Role.AUDITOR]
    _, admin_op = desks[Role.CLIENT_ADMIN]
    r = b.get(CONSOLE + "/audit", params={"actor": admin_op.person_id, "event": "admin.changed"})
    assert r.status_code == 200 and "client.create" in r.text
    r = b.get(CONSOLE + "/audit", params={"event": "Bad Event!"})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = b.get(CONSOLE + "/audit", params={"since": "not a time"})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = b.get(CONSOLE + "/audit/export.jsonl", params={"actor": admin_op.person_id})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines and all(e["data"]["actor"]["person_id"] == admin_op.person_id for e in lines)
    r = b.get(CONSOLE + "/audit/export.csv", params={"event": "admin."})
    assert r.status_code == 200 and r.text.startswith("id,at,type")
    exported = [e.data for e in events_for(nixa, type="admin.viewed") if e.data.get("what") == "audit.export"]
    assert exported[-1]["actor"]["ui"] == "console"
    page = b.get(CONSOLE + "/audit").text
    r = b.post(CONSOLE + "/audit/verify", data={"csrf": csrf_of(page)})
    assert r.status_code == 200 and 'id="verdict"' in r.text and "nguyên vẹn" in r.text


def test_the_dashboard_counts_sign_ins_failures_and_tokens_of_the_last_day(desks, nixa) -> None:  # noqa: ANN001
    b, _ = desks[Role.SUPPORT]
    page = b.get(CONSOLE + "/").text
    signed_in = int(re.search(r'id="total-sign-ins">(\d+)<', page).group(1))
    tokens = int(re.search(r'id="total-tokens">(\d+)<', page).group(1))
    assert signed_in >= len(Role) * 2 and tokens >= len(Role)  # this module's own sign-ins (password, then TOTP) and tokens
    assert "authorization_code" in page and "totp" in page and "local" in page


def test_the_connector_admin_disables_enables_and_tests_a_source(desks, nixa) -> None:  # noqa: ANN001
    b, op = desks[Role.CONNECTOR_ADMIN]
    cid = "console-" + secrets.token_hex(3)
    nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": "k"}, loa="low", enabled=False,
                           display_name_vi="Thử", display_name_en="Trial")
    try:
        page = b.get(CONSOLE + "/connectors")
        assert page.status_code == 200 and cid in page.text
        r = b.post(f"{CONSOLE}/connectors/{cid}/enable", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and nixa.connectors.stored(cid).enabled
        r = b.post(f"{CONSOLE}/connectors/{cid}/test", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 200 and 'id="tested"' in r.text
        r = b.post(f"{CONSOLE}/connectors/{cid}/disable", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and not nixa.connectors.stored(cid).enabled
        changes = [e.data for e in events_for(nixa, type="connector.changed") if e.data.get("connector") == cid]
        assert [c["action"] for c in changes] == ["enabled", "disabled"] and changes[0]["actor"]["person_id"] == op.person_id
    finally:
        nixa.connectors.set_enabled(cid, False)


def test_the_super_admin_sees_the_keys_and_rotates_them(desks, nixa) -> None:  # noqa: ANN001
    b, op = desks[Role.SUPER_ADMIN]
    page = b.get(CONSOLE + "/keys")
    assert page.status_code == 200 and "ES256" in page.text and nixa.signing_keys.backend in page.text
    auditor, _ = desks[Role.AUDITOR]
    shown = auditor.get(CONSOLE + "/keys").text
    assert "/keys/rotate" not in shown and "/retire" not in shown  # read-only for the auditor
    before = {k.kid: k.state for k in nixa.signing_keys.list() if k.alg == "ES256"}
    r = b.post(CONSOLE + "/keys/rotate", data={"alg": "ES256", "csrf": csrf_of(page.text)})
    assert r.status_code == 303
    after = {k.kid: k.state for k in nixa.signing_keys.list() if k.alg == "ES256"}
    assert after != before
    rotated = [e.data for e in events_for(nixa, type="admin.changed") if e.data.get("what") == "key.rotate"]
    assert rotated[-1]["actor"]["person_id"] == op.person_id and rotated[-1]["before"] == before
    r = b.post(CONSOLE + "/keys/rotate", data={"alg": "HS256", "csrf": csrf_of(page.text)})
    assert r.status_code == 400 and 'role="alert"' in r.text


def test_the_callback_checks_the_id_token_it_receives(app, nixa, http) -> None:  # noqa: ANN001
    """OIDC Core §3.1.3.7 on the console's side: another app's ID token, or one without the
    nonce this sign-in sent, finishes nothing."""
    from admin.console_signin import SignInFailed, check_id_token
    from tests.conftest import make_citizen

    client = register_client(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, http, client, make_citizen(nixa), nonce="n-0S6_WzA2Mj")
    with pytest.raises(SignInFailed):
        check_id_token(nixa, tokens["id_token"], "n-0S6_WzA2Mj")  # the right nonce, but not the console's token
    op = new_operator(nixa, Role.AUDITOR)
    from tests.admin.operators import console_sign_in

    console = console_sign_in(app, op)  # its nonce is the helper's own, not this one
    with pytest.raises(SignInFailed):
        check_id_token(nixa, console["id_token"], "another-nonce")
    with pytest.raises(SignInFailed):
        check_id_token(nixa, console["id_token"][:-4] + "AAAA", "another-nonce")


def test_a_sign_in_started_in_one_browser_cannot_finish_in_another(app) -> None:  # noqa: ANN001
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as first, \
            TestClient(app, base_url="http://testserver", follow_redirects=False) as second:
        r = first.get(CONSOLE + "/login")
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        second.get(CONSOLE + "/login")  # a browser id of its own
        r = second.get(CONSOLE + "/callback", params={"code": "x", "state": state})
        assert r.status_code == 400 and "Phiên đăng nhập đã hết hạn" in r.text


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/people/" + "x" * 200 + "?reason=kiểm tra", None),
    ("get", "/apps/" + "y" * 200, None),
    ("get", "/apps/no-such-app/edit", None),
    ("get", "/audit?since=2026-13-45T99:99", None),
    ("get", "/audit?since=2026-12-02T10:00&until=2026-12-01T10:00", None),
    ("get", "/audit/export.csv?event=%00", None),
    ("get", "/people?reason=kiểm+tra+lỗi&phone=not-a-phone", None),
    ("post", "/keys/no-such-kid/retire", {}),
    ("post", "/connectors/no-such-source/test", {}),
    ("post", "/apps/no-such-app/secret", {"overlap": "12"}),
    ("post", "/apps/no-such-app/edit", {"redirect_uris": "https://x.example.vn/cb"}),
    ("post", "/people/no-such-person/unlink", {"reason": "kiểm tra lỗi", "link_id": "z" * 40}),
    ("post", "/apps/new", {"client_id": "", "redirect_uris": "\x00", "nixa_code_ttl": "9" * 40}),
])
def test_odd_input_answers_a_page_never_a_server_error(desks, method, path, body) -> None:  # noqa: ANN001
    b, _ = desks[Role.SUPER_ADMIN]
    if method == "get":
        r = b.get(CONSOLE + path)
    else:
        r = b.post(CONSOLE + path, data={**body, "csrf": csrf_of(b.get(CONSOLE + "/").text)})
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html") and 'role="alert"' in r.text


def test_a_form_that_is_not_a_form_answers_a_page(desks) -> None:  # noqa: ANN001
    b, _ = desks[Role.SUPER_ADMIN]
    r = b.post(CONSOLE + "/apps/new", content=b'{"client_id": "x"}', headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/html")


def test_a_console_session_lasts_as_long_as_its_access_token(app, nixa) -> None:  # noqa: ANN001
    import time

    from tests.admin.operators import console_sign_in

    op = new_operator(nixa, Role.AUDITOR)
    tokens = console_sign_in(app, op)
    cookie = ConsoleSessions(nixa).open(tokens["access_token"], tokens["id_token"], 1)  # as if it had one second left
    with TestClient(app, base_url="http://testserver", follow_redirects=False, cookies={CONSOLE_COOKIE: cookie}) as b:
        assert b.get(CONSOLE + "/audit").status_code == 200
        time.sleep(1.6)
        r = b.get(CONSOLE + "/audit")
        assert r.status_code == 303 and r.headers["location"] == CONSOLE + "/login?next=%2Fadmin%2Fconsole%2Faudit"


def test_the_console_cookie_is_host_bound_on_https() -> None:
    from types import SimpleNamespace

    from admin.console_signin import console_cookie

    assert console_cookie(SimpleNamespace(settings=SimpleNamespace(secure_cookies=True))) == "__Host-nixa_console"
    assert console_cookie(SimpleNamespace(settings=SimpleNamespace(secure_cookies=False))) == "nixa_console"


# ---- connector forms, key revocation, merging people ---------------------------------------------


@pytest.fixture(scope="module")
def own_desks(own_app):  # noqa: ANN001, ANN201
    """Console browsers on a NIXA of its own (tests/admin/conftest.py own_app): the connectors these
    tests create and the keys they revoke never reach the shared app's chooser and JWKS."""
    out = {}
    for role in (Role.SUPER_ADMIN, Role.CONNECTOR_ADMIN):
        op = new_operator(own_app.state.nixa, role)
        out[role] = (sign_in(own_app, op), op)
    yield out
    for b, _ in out.values():
        b.__exit__(None, None, None)


def _connector_events(nixa, cid: str) -> list[dict]:  # noqa: ANN001
    return [e.data for e in events_for(nixa, type="connector.changed") if e.data.get("connector") == cid]


def test_a_connector_admin_creates_a_connector_through_the_form_its_type_declares(own_desks, own_app) -> None:  # noqa: ANN001
    from connectors.declaration import form

    nixa = own_app.state.nixa
    b, op = own_desks[Role.CONNECTOR_ADMIN]
    listed = b.get(CONSOLE + "/connectors").text
    assert f'href="{CONSOLE}/connectors/new"' in listed
    picker = b.get(CONSOLE + "/connectors/new")
    assert picker.status_code == 200 and '<option value="telecom_sms"' in picker.text and "cfg." not in picker.text
    page = b.get(CONSOLE + "/connectors/new", params={"type": "telecom_sms"}).text
    declared = form("telecom_sms")["properties"]
    assert set(re.findall(r'name="cfg\.([^"]+)"', page)) == set(declared)  # one input per declared key, no other
    assert re.search(r'<input type="password" id="cfg-api_key" name="cfg.api_key" value=""', page)
    assert re.search(r'<input type="number" step="1" id="cfg-otp_ttl" name="cfg.otp_ttl" value="300"', page)
    assert re.search(r'<input type="number" step="any" id="cfg-timeout" name="cfg.timeout"', page)
    assert re.search(r'<select id="cfg-loa" name="cfg.loa">', page) and '<select id="loa" name="loa">' in page
    assert re.search(r'<label for="cfg-base_url">base_url <span aria-hidden="true">\*</span>', page)  # required
    assert re.search(r'<label for="cfg-sender">sender</label>', page)  # not required
    cid, secret = "sms-" + secrets.token_hex(3), "khoa-bi-mat-" + secrets.token_hex(8)
    body = {"csrf": csrf_of(page), "type": "telecom_sms", "id": cid, "loa": "substantial", "display_name_vi": "Nhà mạng thử",
            "display_name_en": "Trial operator", "position": "40", "cfg.base_url": "http://127.0.0.1:9", "cfg.api_key": secret,
            "cfg.otp_ttl": "120", "cfg.timeout": "2.5", "cfg.loa": "low"}
    r = b.post(CONSOLE + "/connectors/new", data=body)
    assert r.status_code == 303 and r.headers["location"] == CONSOLE + "/connectors?notice=created", r.text[:1000]
    stored = nixa.connectors.stored(cid)
    assert stored.config["api_key"] == secret and stored.config["otp_ttl"] == 120 and stored.config["timeout"] == 2.5
    assert stored.loa.name.lower() == "substantial" and stored.position == 40 and stored.display_name_en == "Trial operator"
    after = b.get(local(r.headers["location"])).text
    assert cid in after and "Đã tạo nguồn định danh" in after and secret not in after
    [created] = _connector_events(nixa, cid)
    assert created["action"] == "created" and created["actor"]["person_id"] == op.person_id and created["actor"]["ui"] == "console"
    assert created["changes"]["api_key"] == "(changed)" and secret not in json.dumps(created)
    # "new" never overwrites; a key the type does not declare is refused by name; nothing written
    r = b.post(CONSOLE + "/connectors/new", data={**body, "cfg.api_key": "other"})
    assert r.status_code == 409 and 'role="alert"' in r.text and nixa.connectors.stored(cid).config["api_key"] == secret
    other = "sms-" + secrets.token_hex(3)
    r = b.post(CONSOLE + "/connectors/new", data={**body, "id": other, "cfg.smuggled": "x"})
    assert r.status_code == 400 and "smuggled" in r.text and nixa.connectors.stored(other) is None
    assert f'value="{other}"' in r.text and secret not in r.text  # the input kept, the secret never echoed
    assert len(_connector_events(nixa, cid)) == 1


def test_an_edit_keeps_an_empty_secret_and_a_value_of_the_wrong_kind_comes_back_with_its_message(own_desks, own_app) -> None:  # noqa: ANN001
    nixa = own_app.state.nixa
    b, op = own_desks[Role.CONNECTOR_ADMIN]
    cid, secret = "sms-" + secrets.token_hex(3), "giu-nguyen-" + secrets.token_hex(8)
    nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": secret}, loa="low", enabled=False,
                           display_name_vi="Thử", display_name_en="Trial")
    assert f'href="{CONSOLE}/connectors/{cid}/edit"' in b.get(CONSOLE + "/connectors").text
    page = b.get(f"{CONSOLE}/connectors/{cid}/edit")
    assert page.status_code == 200 and secret not in page.text and 'value="http://127.0.0.1:9"' in page.text
    assert "Đã có giá trị bí mật" in page.text and 'name="cfg.api_key" value=""' in page.text
    version = nixa.connectors.stored(cid).version
    form = {"csrf": csrf_of(page.text), "loa": "low", "display_name_vi": "Thử", "display_name_en": "Trial", "position": "100",
            "cfg.base_url": "http://127.0.0.1:10", "cfg.api_key": "", "cfg.sender": "GOV"}
    r = b.post(f"{CONSOLE}/connectors/{cid}/edit", data=form)
    assert r.status_code == 303 and r.headers["location"] == CONSOLE + "/connectors?notice=saved", r.text[:1000]
    stored = nixa.connectors.stored(cid)
    assert stored.config["api_key"] == secret and stored.config["base_url"] == "http://127.0.0.1:10" and stored.config["sender"] == "GOV"
    assert stored.version > version and not stored.enabled  # live (a new version), still disabled
    edited = _connector_events(nixa, cid)[-1]
    assert edited["action"] == "edited" and edited["actor"]["ui"] == "console" and edited["actor"]["person_id"] == op.person_id
    assert "api_key" not in edited["changes"] and edited["changes"]["sender"] == {"before": None, "after": "GOV"}
    r = b.post(f"{CONSOLE}/connectors/{cid}/edit", data={**form, "cfg.otp_ttl": "năm phút"})
    assert r.status_code == 400 and 'role="alert"' in r.text and "`otp_ttl` must be an integer" in r.text
    assert 'value="năm phút"' in r.text and secret not in r.text and "Traceback" not in r.text
    assert nixa.connectors.stored(cid).version == stored.version
    r = b.post(f"{CONSOLE}/connectors/{cid}/edit", data={**form, "cfg.base_url": ""})  # a required key
    assert r.status_code == 400 and "base_url" in r.text and nixa.connectors.stored(cid).version == stored.version


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.SUPPORT])
def test_an_auditor_or_support_agent_neither_sees_nor_opens_the_connector_forms(desks, nixa, role) -> None:  # noqa: ANN001
    b, _ = desks[role]
    if role is Role.AUDITOR:
        listed = b.get(CONSOLE + "/connectors").text
        assert "/connectors/new" not in listed and "/edit" not in listed
    for path in ("/connectors/new", "/connectors/new?type=telecom_sms", "/connectors/population/edit"):
        r = b.get(CONSOLE + path)
        assert r.status_code == 403 and "Vai trò của bạn không được dùng" in r.text, (path, r.status_code)


def test_the_super_admin_revokes_a_key_with_a_reason_and_its_kid_leaves_the_jwks(own_desks, own_app, own_http, desks) -> None:  # noqa: ANN001
    nixa = own_app.state.nixa
    b, op = own_desks[Role.SUPER_ADMIN]
    kid = next(k.kid for k in nixa.signing_keys.list() if k.alg == "ES256" and k.state == "pending")  # published, not signing
    assert kid in {k["kid"] for k in own_http.get("/jwks").json()["keys"]}
    page = b.get(CONSOLE + "/keys").text
    assert f"/keys/{kid}/revoke" in page and 'name="confirm"' in page
    for form, says in (({"confirm": "yes"}, "give a reason"), ({"reason": "ab", "confirm": "yes"}, "give a reason"),
                       ({"reason": WHY}, "đánh dấu ô xác nhận")):
        r = b.post(f"{CONSOLE}/keys/{kid}/revoke", data={**form, "csrf": csrf_of(page)})
        assert r.status_code == 400 and 'role="alert"' in r.text and says in r.text, (form, r.status_code)
        assert kid in {k["kid"] for k in own_http.get("/jwks").json()["keys"]}
    why = "Khóa bị lộ: sự cố an ninh số 12"
    r = b.post(f"{CONSOLE}/keys/{kid}/revoke", data={"reason": why, "confirm": "yes", "csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == CONSOLE + "/keys?notice=revoked"
    assert kid not in {k["kid"] for k in own_http.get("/jwks").json()["keys"]}
    assert kid not in {k.kid for k in nixa.signing_keys.list()}
    [revoked] = [e.data for e in events_for(nixa, type="admin.changed") if e.data.get("what") == "key.revoke" and e.data.get("target") == kid]
    assert revoked["reason"] == why and revoked["actor"]["person_id"] == op.person_id and revoked["actor"]["ui"] == "console"
    assert "/revoke" not in desks[Role.AUDITOR][0].get(CONSOLE + "/keys").text  # read-only for the auditor


def test_a_support_agent_merges_two_persons_with_a_reason(desks, nixa) -> None:  # noqa: ANN001
    from tests.conftest import make_citizen

    b, agent = desks[Role.SUPPORT]
    into, _, _ = citizen_with_id(nixa)
    source = make_citizen(nixa, name="Trần Văn (bản ghi trùng)")
    page = b.get(f"{CONSOLE}/people/{into.person_id}", params={"reason": WHY}).text
    assert 'id="merge-form"' in page and 'name="source"' in page
    r = b.post(f"{CONSOLE}/people/{into.person_id}/merge", data={"csrf": csrf_of(page), "source": source.person_id, "reason": ""})
    assert r.status_code == 400 and 'role="alert"' in r.text and nixa.people.get(source.person_id) is not None
    r = b.post(f"{CONSOLE}/people/{into.person_id}/merge", data={"csrf": csrf_of(page), "source": source.person_id, "reason": WHY})
    assert r.status_code == 303 and r.headers["location"].endswith("notice=merge"), r.text[:500]
    assert nixa.people.get(source.person_id) is None
    assert {link.subject for link in nixa.people.links(into.person_id)} == {into.username, source.username}
    assert "Đã gộp hai bản ghi" in b.get(local(r.headers["location"])).text
    [merged] = _changes(nixa, "person.merge", into.person_id)
    assert merged["reason"] == WHY and merged["actor"]["person_id"] == agent.person_id and merged["actor"]["ui"] == "console"
    # both with an authenticator app: the service's 409, as a message on the page
    first, second = new_operator(nixa), new_operator(nixa)
    r = b.post(f"{CONSOLE}/people/{first.person_id}/merge", data={"csrf": csrf_of(page), "source": second.person_id, "reason": WHY})
    assert r.status_code == 409 and 'role="alert"' in r.text and "authenticator app" in r.text and "Traceback" not in r.text
    assert nixa.people.get(second.person_id) is not None and nixa.people.get(first.person_id) is not None
