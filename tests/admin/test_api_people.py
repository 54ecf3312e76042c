"""Support and incidents through the admin API: find a person, see their links (with
provenance), sessions, devices, consents and access log; lock and unlock them; unlink an
identity; revoke sessions and grants (the apps told by back-channel logout); merge two records.
Every look and every action needs a reason, is audited with the actor, and is shown to the
citizen in their own access log."""

from __future__ import annotations

import secrets

import pytest
from starlette.testclient import TestClient

from admin.roles import Role
from idp.account import service as account
from tests.account.conftest import Account
from tests.admin.operators import signed_in
from tests.conftest import authorize, code_flow, form_action, hidden, make_citizen, register_client
from tests.oidc.test_audit import events_for
from tests.oidc.test_backchannel_logout import Receiver, app_client, rows_of, verified

API = "/admin/api/people"
WHY = {"reason": "Yêu cầu hỗ trợ số 4521: công dân báo mất điện thoại"}


@pytest.fixture(scope="module")
def agent(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.SUPPORT)


@pytest.fixture(scope="module")
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.server.shutdown()


def citizen_with_id(nixa):  # noqa: ANN001, ANN201
    """A citizen with a verified national ID, a unique name and phone."""
    national_id = "0" + "".join(secrets.choice("0123456789") for _ in range(11))
    phone = "+8491" + "".join(secrets.choice("0123456789") for _ in range(7))
    citizen = make_citizen(nixa, name=f"Trần Văn {secrets.token_hex(4)}", phone_number=phone)
    with nixa.db.session() as s:
        from idp.store.models import Person

        s.get(Person, citizen.person_id).national_id = national_id
    return citizen, national_id, phone


def support_rows(nixa, person_id: str) -> list[account.AccessLogRow]:  # noqa: ANN001
    rows, _ = account.access_log(nixa, person_id, account.AccessLogFilter())
    return [r for r in rows if r.channel == "support"]


def test_search_by_national_id_name_and_phone(http, nixa, agent):  # noqa: ANN001
    citizen, national_id, phone = citizen_with_id(nixa)
    name = nixa.people.attributes(citizen.person_id)["name"].value
    local_phone = "0" + phone[3:]  # 091...: as a caller reads it out
    for query in ({"national_id": national_id}, {"name": name.split()[-1]}, {"name": name}, {"phone": local_phone}, {"phone": phone}):
        r = http.get(API, params={**query, **WHY}, headers=agent.headers())
        assert r.status_code == 200, (query, r.text)
        assert [p["person_id"] for p in r.json()] == [citizen.person_id], query
    assert r.json()[0]["national_id"] == national_id and r.json()[0]["name"] == name
    assert http.get(API, params={"name": "không có ai tên này " + secrets.token_hex(4), **WHY}, headers=agent.headers()).json() == []
    searched = [e.data for e in events_for(nixa, type="admin.viewed") if e.data.get("what") == "people.search"]
    assert searched[-1]["actor"]["person_id"] == agent.person_id and searched[-1]["reason"] == WHY["reason"]
    assert national_id not in str(searched[-1])  # which fields were searched, not the values


@pytest.mark.parametrize("params", [{}, {"reason": "ab"}, {"reason": "x" * 501}])
def test_a_look_without_a_reason_is_refused(http, nixa, agent, params):  # noqa: ANN001
    citizen = make_citizen(nixa)
    assert http.get(f"{API}/{citizen.person_id}", params=params, headers=agent.headers()).status_code == 400
    assert http.get(API, params={"name": "Bình", **params}, headers=agent.headers()).status_code == 400
    assert http.post(f"{API}/{citizen.person_id}/lock", json=params, headers=agent.headers()).status_code == 400
    assert support_rows(nixa, citizen.person_id) == []


def test_the_view_shows_links_sessions_devices_consents_access_log_and_tells_the_citizen(http, app, nixa, agent):  # noqa: ANN001
    citizen, national_id, _ = citizen_with_id(nixa)
    client = register_client(nixa)  # not first-party: a consent is recorded
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, http, client, citizen)
    http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    r = http.get(f"{API}/{citizen.person_id}", params=WHY, headers=agent.headers())
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["national_id"] == national_id and view["status"] == "active"
    [link] = view["links"]
    assert link["connector_id"] == "local" and link["subject"] == citizen.username and set(link["provenance"]) == {"method", "loa", "from"}
    [session] = view["sessions"]
    assert session["clients"] == [client.client_id] and session["loa"] == 1
    assert view["consents"][0]["client_id"] == client.client_id
    assert view["grants"][0]["client_id"] == client.client_id and view["grants"][0]["revoked_at"] is None
    assert {e["channel"] for e in view["access_log"]} >= {"id_token", "userinfo"}
    assert view["devices"] == {"passkeys": [], "authenticator_app": None, "recovery_codes_left": 0}
    text = r.text
    assert citizen.password not in text and tokens["access_token"] not in text and "sid" not in session
    [shown] = support_rows(nixa, citizen.person_id)
    assert shown.claims == ["support_view", WHY["reason"]] and "Quản trị" in shown.client_name
    # the citizen's own access-log page says it
    page = Account(app, nixa, citizen.person_id).page("/account/access-log").text
    assert WHY["reason"] in page and "Hỗ trợ viên xem hồ sơ của bạn" in page and "Hỗ trợ viên NIXA" in page


def test_lock_ends_every_session_at_the_portals_and_refuses_sign_in_until_unlocked(http, app, nixa, agent, receiver):  # noqa: ANN001
    citizen, _, _ = citizen_with_id(nixa)
    path, uri = receiver.endpoint()
    portal = app_client(nixa, uri)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, http, portal, citizen)
        sid = verified(http, tokens["id_token"]).claims["sid"]
        r = http.post(f"{API}/{citizen.person_id}/lock", json=WHY, headers=agent.headers())
        assert r.status_code == 200 and r.json()["status"] == "locked", r.text
        [logout] = receiver.wait_for(path, 1)
        assert verified(http, logout).claims["sid"] == sid  # the portal ends that session
        assert {row.reason for row in rows_of(nixa, portal.client_id)} == {"person_locked"}
        assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
        assert nixa.sessions.person_sessions(citizen.person_id) == []
        r, _, _ = authorize(b, portal)  # the SSO cookie is dead: the sign-in page again
        assert r.headers["location"].startswith("/interaction/")
        page = b.get(r.headers["location"]).text
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username, "password": citizen.password})
        assert "code=" not in r.headers.get("location", ""), r.text[:300]
    assert http.post(f"{API}/{citizen.person_id}/lock", json=WHY, headers=agent.headers()).status_code == 409
    r = http.post(f"{API}/{citizen.person_id}/unlock", json={"reason": "đã xác minh lại tại quầy"}, headers=agent.headers())
    assert r.status_code == 200 and r.json()["status"] == "active"
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        code_flow(b, http, portal, citizen)
    assert [row.claims for row in support_rows(nixa, citizen.person_id)] == [["support_unlock", "đã xác minh lại tại quầy"],
                                                                               ["support_lock", WHY["reason"]]]
    lock = [e.data for e in events_for(nixa, type="admin.changed", person_id=citizen.person_id) if e.data["what"] == "person.lock"][0]
    assert lock["before"] == {"status": "active"} and lock["after"] == {"status": "locked"} and lock["actor"]["person_id"] == agent.person_id


def test_revoke_sessions_and_one_grant(http, app, nixa, agent, receiver):  # noqa: ANN001
    citizen, _, _ = citizen_with_id(nixa)
    path_a, uri_a = receiver.endpoint()
    path_b, uri_b = receiver.endpoint()
    a, b_app = app_client(nixa, uri_a), app_client(nixa, uri_b)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        ta = code_flow(b, http, a, citizen)
        tb = code_flow(b, http, b_app, citizen)
    grant_b = nixa.tokens.validate_access_token(tb["access_token"]).grant_id
    r = http.post(f"{API}/{citizen.person_id}/grants/{grant_b}/revoke", json=WHY, headers=agent.headers())
    assert r.status_code == 204, r.text
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tb['access_token']}"}).status_code == 401
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {ta['access_token']}"}).status_code == 200
    [logout_b] = receiver.wait_for(path_b, 1)
    assert "sid" not in verified(http, logout_b).claims  # person-wide at that app
    assert http.post(f"{API}/{citizen.person_id}/grants/{grant_b}/revoke", json=WHY, headers=agent.headers()).status_code == 409
    r = http.post(f"{API}/{citizen.person_id}/sessions/revoke", json=WHY, headers=agent.headers())
    assert r.status_code == 200 and r.json() == {"grants_revoked": 1, "sessions_ended": 1}
    receiver.wait_for(path_a, 1)
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {ta['access_token']}"}).status_code == 401
    other = make_citizen(nixa)
    assert http.post(f"{API}/{other.person_id}/grants/{grant_b}/revoke", json=WHY, headers=agent.headers()).status_code == 404


def test_unlink_an_identity(http, nixa, agent):  # noqa: ANN001
    citizen, national_id, _ = citizen_with_id(nixa)
    second = f"second-{secrets.token_hex(4)}"
    assert nixa.people.add_local_account(second, secrets.token_urlsafe(12), national_id=national_id) == citizen.person_id
    links = {link.subject: link.id for link in nixa.people.links(citizen.person_id)}
    r = http.post(f"{API}/{citizen.person_id}/links/{links[second]}/unlink", json=WHY, headers=agent.headers())
    assert r.status_code == 204, r.text
    assert [link.subject for link in nixa.people.links(citizen.person_id)] == [citizen.username]
    r = http.post(f"{API}/{citizen.person_id}/links/{links[citizen.username]}/unlink", json=WHY, headers=agent.headers())
    assert r.status_code == 409 and r.json()["error"] == "last_link"
    unlinked = [e.data for e in events_for(nixa, type="admin.changed", person_id=citizen.person_id) if e.data["what"] == "person.unlink"]
    assert unlinked[0]["before"]["subject"] == second and unlinked[0]["reason"] == WHY["reason"]
    assert ["support_unlink", WHY["reason"]] in [row.claims for row in support_rows(nixa, citizen.person_id)]


def test_merge_two_records_of_one_person(http, app, nixa, agent):  # noqa: ANN001
    into, national_id, _ = citizen_with_id(nixa)
    source = make_citizen(nixa, name="Trần Văn (bản ghi trùng)")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, http, register_client(nixa, nixa_first_party=True), source)
    body = {"source": source.person_id, "into": into.person_id, "reason": "hai bản ghi của cùng một người (phiếu 77)"}
    r = http.post(f"{API}/merge", json=body, headers=agent.headers())
    assert r.status_code == 200, r.text
    assert r.json()["person_id"] == into.person_id and r.json()["national_id"] == national_id
    assert nixa.people.get(source.person_id) is None
    assert {link.subject for link in nixa.people.links(into.person_id)} == {into.username, source.username}
    assert nixa.people.check_local_password(source.username, source.password) == into.person_id
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401  # source's grants end
    merged = [e.data for e in events_for(nixa, type="admin.changed", person_id=into.person_id) if e.data["what"] == "person.merge"]
    assert merged[0]["reason"] == body["reason"] and merged[0]["before"]["source"]["person_id"] == source.person_id
    assert ["support_merge", body["reason"]] in [row.claims for row in support_rows(nixa, into.person_id)]
    other, _, _ = citizen_with_id(nixa)  # two different verified IDs: two people, never merged
    r = http.post(f"{API}/merge", json={**body, "source": other.person_id}, headers=agent.headers())
    assert r.status_code == 409 and nixa.people.get(other.person_id) is not None
    assert http.post(f"{API}/merge", json={**body, "source": into.person_id}, headers=agent.headers()).status_code == 400
