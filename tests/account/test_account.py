"""The citizen's account page (/account): reached only at substantial, lists what NIXA holds
about the person, and every change is CSRF-protected, checked server-side and audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from connectors.base import Assertion, LevelOfAssurance, VerifiedAttribute
from idp.account import signin
from idp.account.browsers import Places, network
from idp.identity.people import Provenance
from idp.login.session import csrf_token
from idp.store.models import AuditEvent, LinkedIdentity
from tests.account.conftest import Account
from tests.conftest import code_flow, hidden, make_citizen, query_of, register_client

VN = dt.timezone(dt.timedelta(hours=7))


# ---- helpers ------------------------------------------------------------------------------------


def national_id() -> str:
    return "0" + "".join(secrets.choice("0123456789") for _ in range(11))


def prove(nixa, person_id: str, connector_id: str, nid: str | None = None, ip: str = "203.0.113.7") -> str:  # noqa: ANN001
    """Link a source to the person as the linking policy does after a proof (with provenance)."""
    now = time.time()
    attrs = {"national_id": VerifiedAttribute("national_id", nid, "population", now)} if nid else {}
    assertion = Assertion(connector_id=connector_id, subject=secrets.token_hex(8), attributes=attrs, loa=LevelOfAssurance.SUBSTANTIAL)
    nixa.people.link(person_id, assertion, provenance=Provenance("population", 2, ip))
    return next(link.id for link in nixa.people.links(person_id) if link.connector_id == connector_id)


def events(nixa, person_id: str, type_: str) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.person_id == person_id, AuditEvent.type == type_)))


def sent_to_sign_in(r, *, max_age: int = signin.VIEW_MAX_AGE) -> dict[str, str]:  # noqa: ANN001
    assert r.status_code == 303, r.text[:300]
    location = r.headers["location"]
    assert urlsplit(location).path == "/authorize", location
    q = query_of(location)
    assert q["client_id"] == signin.ACCOUNT_CLIENT_ID
    assert q["acr_values"] == "urn:nixa:loa:substantial"
    assert q["redirect_uri"] == "http://testserver/account/callback"
    assert q["max_age"] == str(max_age)
    assert q["code_challenge_method"] == "S256" and q["code_challenge"]
    return q


# ---- who may enter -------------------------------------------------------------------------------


def test_below_substantial_is_sent_to_sign_in_never_the_page(nixa, app, browser, open_accounts):
    citizen = make_citizen(nixa)
    r = browser.get("/account")
    sent_to_sign_in(r)
    assert "nixa_browser=" in r.headers.get("set-cookie", "")
    low = open_accounts(citizen.person_id, loa=1)
    for path in ("/account", "/account/access-log", "/account/access-log.json", "/account/access-log.csv", "/account/export.json"):
        sent_to_sign_in(low.client.get(path))
    # Following the redirect: NIXA's own sign-in asks for substantial; a low session never gets the page.
    r = low.client.get("/account")
    for _ in range(6):
        assert "Tài khoản của tôi" not in r.text and citizen.username not in r.text
        if r.status_code != 303:
            break
        r = low.client.get(r.headers["location"])
    # POSTs too: a redirect to sign in, nothing changed.
    r = low.post("/account/sessions/end-others")
    sent_to_sign_in(r)
    assert len(nixa.sessions.person_sessions(citizen.person_id)) == 1


def test_an_old_substantial_sign_in_must_be_renewed(nixa, open_accounts):
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    account.page()
    account.age(signin.VIEW_MAX_AGE + 60)
    sent_to_sign_in(account.client.get("/account"))


def test_round_trip_through_nixa_authorize_returns_to_the_account(nixa, open_accounts):
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    url = signin.authorize_url(nixa, account.browser_id, "/account/access-log", max_age=signin.VIEW_MAX_AGE)
    r = account.client.get(url)
    assert r.status_code == 303, r.text
    cb = urlsplit(r.headers["location"])
    assert cb.path == "/account/callback" and "code" in parse_qs(cb.query)
    r = account.client.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"] == "/account/access-log"
    # The account area holds no session of its own: it is not an app the logout must sign out of.
    assert signin.ACCOUNT_CLIENT_ID not in nixa.sessions.load(account.client.cookies.get("nixa_session")).clients
    # The state is single-use and bound to this browser.
    assert account.client.get(f"{cb.path}?{cb.query}").status_code == 400
    other = open_accounts(citizen.person_id)
    url = signin.authorize_url(nixa, account.browser_id, "/account", max_age=signin.VIEW_MAX_AGE)
    r = account.client.get(url)
    assert other.client.get(r.headers["location"]).status_code == 400
    # Refusals of the sign-in end on a clear page, and only account pages are return targets.
    state = signin.AccountSignIns(nixa).start(account.browser_id, "/account")
    r = account.client.get("/account/callback", params={"error": "unmet_authentication_requirements", "state": state,
                                                         "iss": "http://testserver"})
    assert r.status_code == 403 and "đáng kể" in r.text
    assert signin.safe_next("https://evil.example/") == "/account"
    assert signin.safe_next("/account//evil.example") == "/account"


# ---- the page ------------------------------------------------------------------------------------


def test_page_lists_profile_masked_id_and_links_with_provenance(nixa, open_accounts):
    citizen = make_citizen(nixa)
    nid = national_id()
    prove(nixa, citizen.person_id, "test-operator", nid=nid, ip="203.0.113.7")
    account = open_accounts(citizen.person_id)
    page = account.page().text
    assert "Tài khoản của tôi" in page
    assert "Nguyễn Thị Bình" in page and "1992-03-04" in page
    assert nid not in page and "•" * 8 + nid[-4:] in page  # national ID masked but the last 4 digits
    assert "test-operator" in page and "203.0.113.7" in page and "Đáng kể" in page
    assert "Chứng minh bằng population" in page
    english = account.page(lang="en").text
    assert "My account" in english and "Proven with population, level Substantial" in english


@pytest.mark.parametrize(("ip", "where"), [("127.0.0.1", "this_device"), ("::1", "this_device"), ("10.20.30.40", "private"),
                                           ("192.168.1.9", "private"), ("fe80::1", "private"), ("113.160.1.1", "internet"),
                                           ("2405:4800::1", "internet"), ("testclient", "unknown"), ("", "unknown")])
def test_a_sessions_address_is_told_as_a_kind_of_network(ip, where):
    assert network(ip) == where


def test_a_session_shows_its_approximate_place_from_the_operators_city_database(nixa, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    from idp.app import Nixa, create_app

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["vi", "en"], description="test")
    writer.insert_network(IPSet(["113.160.0.0/16"]), {"city": {"names": {"vi": "Hà Nội", "en": "Hanoi"}},
                                                      "country": {"names": {"vi": "Việt Nam", "en": "Vietnam"}}})
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    places = Places(str(path))
    assert places.near("113.160.1.1") == {"vi": "Hà Nội, Việt Nam", "en": "Hanoi, Vietnam"}
    assert places.near("8.8.8.8") is None and places.near("10.1.2.3") is None  # not in it; not an Internet address
    assert Places("").near("113.160.1.1") is None
    assert Places(str(tmp_path / "missing.mmdb")).near("113.160.1.1") is None  # a wrong path shows no place, never a 500

    with_places = Nixa(nixa.settings.model_copy(update={"geoip_database": str(path)}))
    try:
        citizen = make_citizen(with_places)
        account = Account(create_app(with_places.settings, nixa=with_places), with_places, citizen.person_id, ip="113.160.1.1")
        assert "113.160.1.1 <span class=\"hint\">(Hà Nội, Việt Nam)</span>" in account.page().text
        account.client.close()
    finally:
        with_places.db.engine.dispose()


def test_sessions_listed_and_the_other_one_signed_out(nixa, open_accounts):
    citizen = make_citizen(nixa)
    mine = open_accounts(citizen.person_id, user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36")
    other = open_accounts(citizen.person_id, user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Mobile Safari/604.1")
    page = mine.page().text
    assert "Chrome trên Linux" in page and "Safari trên iOS" in page and "Phiên này" in page
    assert "198.51.100.20 <span class=\"hint\">(mạng nội bộ hoặc qua máy chủ trung gian)</span>" in page  # and what kind of network
    handles = re.findall(r'name="session" value="([^"]+)"', page)
    assert len(handles) == 1  # the current session is signed out with /logout, not from the list
    r = mine.post("/account/sessions/end", session=handles[0])
    assert r.status_code == 303 and "session_ended" in r.headers["location"]
    assert [s.sid for _, s in nixa.sessions.person_sessions(citizen.person_id)] == [mine.session.sid]
    assert "Safari trên iOS" not in mine.page().text
    sent_to_sign_in(other.client.get("/account"))
    ended = events(nixa, citizen.person_id, "session.ended")
    assert [e.data["sid"] for e in ended] == [other.session.sid] and ended[0].ip == "testclient"
    # The current one is refused; "everywhere else" ends every other.
    third = open_accounts(citizen.person_id)
    assert mine.post("/account/sessions/end", session=handles[0]).status_code == 409
    r = mine.post("/account/sessions/end-others")
    assert r.status_code == 303
    assert [s.sid for _, s in nixa.sessions.person_sessions(citizen.person_id)] == [mine.session.sid]
    sent_to_sign_in(third.client.get("/account"))


def test_consent_revoked_kills_the_refresh_token_at_once(nixa, browser, http, open_accounts):
    client = register_client(nixa, client_name="Cổng dịch vụ thuế")
    citizen = make_citizen(nixa)
    tokens = code_flow(browser, http, client, citizen, scope="openid profile offline_access")
    assert tokens["refresh_token"]
    account = open_accounts(citizen.person_id)
    page = account.page().text
    assert "Cổng dịch vụ thuế" in page and "Duy trì truy cập khi bạn không trực tuyến" in page
    r = account.post("/account/consents/revoke", client_id=client.client_id)
    assert r.status_code == 303 and "consent_revoked" in r.headers["location"]
    refreshed = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          auth=(client.client_id, client.secret))
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    consents = account.page().text.split('id="consents"')[1].split("</section>")[0]
    assert "Cổng dịch vụ thuế" not in consents  # (the session that signed in to it is still listed, with its name)
    assert events(nixa, citizen.person_id, "consent.revoked")
    # Another person's consent is not theirs to revoke.
    assert account.post("/account/consents/revoke", client_id=client.client_id).status_code == 409


# ---- access log ----------------------------------------------------------------------------------


def test_access_log_lists_releases_exports_and_filters(nixa, browser, http, open_accounts):
    client = register_client(nixa, client_name="Cổng bảo hiểm xã hội")
    other_client = register_client(nixa, client_name="Cổng khác")
    citizen = make_citizen(nixa)
    tokens = code_flow(browser, http, client, citizen, scope="openid profile email")
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    nixa.events.emit("claims.released", person_id=citizen.person_id, client_id=other_client.client_id,
                     data={"claims": ["sub"], "channel": "id_token"})
    account = open_accounts(citizen.person_id)
    page = account.page("/account/access-log").text
    assert "Cổng bảo hiểm xã hội" in page and "Cổng khác" in page and "Thư điện tử" in page
    assert "Ứng dụng truy vấn (UserInfo)" in page

    r = account.client.get("/account/access-log.json")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    entries = r.json()["entries"]
    channels = {(e["client_id"], e["channel"]) for e in entries}
    assert {(client.client_id, "userinfo"), (client.client_id, "id_token"), (other_client.client_id, "id_token")} <= channels
    userinfo = next(e for e in entries if e["channel"] == "userinfo")
    assert "email" in userinfo["claims"] and userinfo["client_name"] == "Cổng bảo hiểm xã hội"
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)  # newest first

    r = account.client.get("/account/access-log.csv")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {(row["client_id"], row["channel"]) for row in rows} == channels

    # Filters: by app, by date range (Vietnam days, inclusive), the same on the exports.
    only = account.client.get("/account/access-log.json", params={"app": other_client.client_id}).json()["entries"]
    assert {e["client_id"] for e in only} == {other_client.client_id}
    assert "Cổng bảo hiểm xã hội" not in account.page("/account/access-log", app=other_client.client_id).text.split("<table")[-1]
    today = dt.datetime.now(VN).date()
    tomorrow, yesterday = today + dt.timedelta(days=1), today - dt.timedelta(days=1)
    assert account.client.get("/account/access-log.json", params={"from": str(tomorrow)}).json()["entries"] == []
    assert account.client.get("/account/access-log.json", params={"to": str(yesterday)}).json()["entries"] == []
    assert len(account.client.get("/account/access-log.json", params={"from": str(today), "to": str(today)}).json()["entries"]) == len(entries)
    csv_filtered = account.client.get("/account/access-log.csv", params={"app": client.client_id}).content.decode("utf-8-sig")
    assert other_client.client_id not in csv_filtered and client.client_id in csv_filtered
    assert account.client.get("/account/access-log", params={"from": "not-a-date"}).status_code == 400


def test_access_log_is_paginated_by_50(nixa, open_accounts):
    client = register_client(nixa, client_name="Cổng phân trang")
    citizen = make_citizen(nixa)
    for i in range(55):
        nixa.events.emit("claims.released", person_id=citizen.person_id, client_id=client.client_id,
                         data={"claims": ["sub", f"c{i}"], "channel": "userinfo"})
    account = open_accounts(citizen.person_id)
    first = account.page("/account/access-log").text
    assert first.count("<td>Ứng dụng truy vấn (UserInfo)</td>") == 50 and "Trang 1/2" in first and "c54" in first
    second = account.page("/account/access-log", page="2").text
    assert second.count("<td>Ứng dụng truy vấn (UserInfo)</td>") == 5 and "c0" in second
    assert len(account.client.get("/account/access-log.json").json()["entries"]) == 55  # exports are not paged


# ---- linked identities ---------------------------------------------------------------------------


def test_unlink_refused_for_the_last_proving_link_and_allowed_otherwise(nixa, open_accounts):
    citizen = make_citizen(nixa)
    first = prove(nixa, citizen.person_id, "test-operator-a", nid=national_id())
    account = open_accounts(citizen.person_id)
    r = account.post("/account/identities/unlink", link_id=first)
    assert r.status_code == 409 and "liên kết cuối cùng chứng minh số định danh" in r.text
    assert first in {link.id for link in nixa.people.links(citizen.person_id)}
    assert events(nixa, citizen.person_id, "identity.link_refused")

    second = prove(nixa, citizen.person_id, "test-operator-b")
    r = account.post("/account/identities/unlink", link_id=first)
    assert r.status_code == 303 and "unlinked" in r.headers["location"]
    assert first not in {link.id for link in nixa.people.links(citizen.person_id)}
    unlinked = events(nixa, citizen.person_id, "identity.unlinked")
    assert unlinked[-1].data["connector"] == "test-operator-a" and unlinked[-1].ip == "testclient"
    # Now b is the last proof: refused again; the local (non-proving) link may go.
    assert account.post("/account/identities/unlink", link_id=second).status_code == 409
    local = next(link.id for link in nixa.people.links(citizen.person_id) if link.connector_id == "local")
    assert account.post("/account/identities/unlink", link_id=local).status_code == 303
    # Someone else's link is not found.
    stranger = make_citizen(nixa)
    theirs = nixa.people.links(stranger.person_id)[0].id
    assert account.post("/account/identities/unlink", link_id=theirs).status_code == 409
    assert theirs in {link.id for link in nixa.people.links(stranger.person_id)}


def test_unlink_needs_a_sign_in_within_five_minutes(nixa, open_accounts):
    citizen = make_citizen(nixa)
    prove(nixa, citizen.person_id, "test-operator-a", nid=national_id())
    local = next(link.id for link in nixa.people.links(citizen.person_id) if link.connector_id == "local")
    account = open_accounts(citizen.person_id)
    account.age(signin.SENSITIVE_MAX_AGE + 30)
    account.page()  # reading is still fine
    q = sent_to_sign_in(account.post("/account/identities/unlink", link_id=local), max_age=signin.SENSITIVE_MAX_AGE)
    assert q["prompt"] == "login"
    assert local in {link.id for link in nixa.people.links(citizen.person_id)}


def test_this_wasnt_me_locks_ends_other_sessions_and_is_audited(nixa, browser, http, open_accounts):
    citizen = make_citizen(nixa)
    link_id = prove(nixa, citizen.person_id, "test-operator-x", nid=national_id())
    intruder = open_accounts(citizen.person_id)
    mine = open_accounts(citizen.person_id)
    r = mine.post("/account/identities/report", link_id=link_id)
    assert r.status_code == 303 and "reported" in r.headers["location"]
    assert [s.sid for _, s in nixa.sessions.person_sessions(citizen.person_id)] == [mine.session.sid]
    sent_to_sign_in(intruder.client.get("/account"))
    reported = events(nixa, citizen.person_id, "identity.reported")
    assert len(reported) == 1 and reported[0].ip == "testclient"
    assert reported[0].data["connector"] == "test-operator-x" and reported[0].data["sessions_ended"] == 1
    if hasattr(LinkedIdentity, "locked_at"):
        link = next(x for x in nixa.people.links(citizen.person_id) if x.id == link_id)
        assert link.locked_at is not None
        assert "Đã khóa lúc" in mine.page().text


# ---- CSRF and exports ----------------------------------------------------------------------------


def test_every_change_without_the_csrf_token_is_refused(nixa, app, open_accounts):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    link_id = prove(nixa, citizen.person_id, "test-operator-c", nid=national_id())
    nixa.record_consent(citizen.person_id, client.client_id, {"profile"})
    account = open_accounts(citizen.person_id)
    other = open_accounts(citizen.person_id)
    handle = re.findall(r'name="session" value="([^"]+)"', account.page().text)[0]
    posts = {
        "/account/identities/unlink": {"link_id": link_id},
        "/account/identities/report": {"link_id": link_id},
        "/account/sessions/end": {"session": handle},
        "/account/sessions/end-others": {},
        "/account/consents/revoke": {"client_id": client.client_id},
    }
    foreign = csrf_token(nixa.csrf_key, other.browser_id, f"account:{other.session.sid}")
    for path, data in posts.items():
        assert account.post(path, csrf=False, **data).status_code == 403, path
        assert account.client.post(path, data={**data, "csrf": foreign}).status_code == 403, path
    assert len(nixa.sessions.person_sessions(citizen.person_id)) == 2
    assert nixa.consented_scopes(citizen.person_id, client.client_id) == {"profile"}
    assert not events(nixa, citizen.person_id, "identity.reported")
    # The page's own token works.
    token = hidden(account.page().text, "csrf")
    assert account.client.post("/account/sessions/end-others", data={"csrf": token}).status_code == 303


def test_download_all_my_data_without_secrets(nixa, browser, http, open_accounts):
    client = register_client(nixa, client_name="Cổng xuất dữ liệu")
    citizen = make_citizen(nixa)
    nid = national_id()
    prove(nixa, citizen.person_id, "test-operator-e", nid=nid, ip="203.0.113.9")
    tokens = code_flow(browser, http, client, citizen, scope="openid profile offline_access")
    http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    from idp.identity import factors
    from idp.store.models import WebAuthnCredential

    credential_id = secrets.token_urlsafe(32)
    with nixa.db.session() as s:
        s.add(WebAuthnCredential(id=credential_id, person_id=citizen.person_id, public_key=b"cose-key", sign_count=0,
                                 name="Điện thoại của tôi", transports=["internal"], backed_up=False, loa=2))
    codes = factors.generate_recovery_codes(nixa, citizen.person_id, ip=None)
    factors.start_totp(nixa, citizen.person_id)
    account = open_accounts(citizen.person_id)
    r = account.client.get("/account/export.json")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    assert r.headers["cache-control"] == "no-store"
    data = r.json()
    assert {row["name"]: row["value"] for row in data["profile"]}["national_id"] == nid
    links = {x["connector"]: x for x in data["linked_identities"]}
    assert links["test-operator-e"]["provenance"] == {"method": "population", "level": 2, "from_address": "203.0.113.9"}
    assert "local" in links
    assert [c["client_id"] for c in data["consents"]] == [client.client_id]
    assert len(data["sessions"]) == 2 and sum(s["current"] for s in data["sessions"]) == 1
    assert {e["client_id"] for e in data["access_log"]} == {client.client_id}
    second = data["second_factors"]
    assert [(p["name"], p["level"]) for p in second["passkeys"]] == [("Điện thoại của tôi", 2)]
    assert second["authenticator_app"]["confirmed_at"] is None and second["recovery_codes_left"] == len(codes) == 10
    text = r.text
    for secret in ("password", "argon2", "connector_data", account.cookie, account.session.sid, tokens["refresh_token"],
                   credential_id, factors.enrolment_secret(nixa, citizen.person_id), *codes):
        assert secret not in text, secret
