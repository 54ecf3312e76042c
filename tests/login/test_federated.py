"""Issue 3 end to end through NIXA's own pages: the same citizen signs in through the registry
+ SMS OTP, the operator's OpenID sign-in and a digital-signature certificate, and is one Person
with three links, one stable pairwise `sub` per sector, and the acr each method earned.

Every counterpart is real: the registry and operator SMS sandboxes (HTTP), the npm
oidc-provider (operator sign-in), the test PKI with its OCSP/CRL sandbox."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from connectors.population.demo_data import DEMO_CITIZEN, DEMO_DECEASED
from idp.store.models import LinkedIdentity, Person
from tests.conftest import authorize, form_action, hidden, query_of, register_client
from tests.connectors.oidc.upstream_browser import sign_in_at_upstream
from tests.connectors.telecom.outbox import latest_code
from tests.login.support import certificate_sign_in, claims_of, consent_if_asked, redeem_claims, registry_otp

def test_one_person_three_links_stable_pairwise_sub(nixa, federation, app, http):  # noqa: ANN001
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True)
    other_sector = register_client(nixa, redirect_uri="https://thue.example.gov.vn/cb", nixa_first_party=True)

    # 1. registry + SMS OTP → substantial
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b1:
        r, q, verifier = authorize(b1, portal, acr_values="urn:nixa:loa:substantial")
        page = b1.get(r.headers["location"]).text
        assert "Chứng thư số" in page and "Nhà mạng" in page
        r = consent_if_asked(b1, registry_otp(b1, federation, page))
        first = redeem_claims(http, portal, r.headers["location"], verifier)
        assert first["acr"] == "urn:nixa:loa:substantial"
        assert set(first["amr"]) >= {"sms", "otp"}

        # step-up inside the same SSO session: high needs the certificate, the sid stays
        r, q, verifier = authorize(b1, portal, acr_values="urn:nixa:loa:high")
        page = b1.get(r.headers["location"]).text
        assert "Chứng thư số" in page and "Nhà mạng" not in page  # only methods reaching high
        r = consent_if_asked(b1, certificate_sign_in(b1, federation, page))
        stepped = redeem_claims(http, portal, r.headers["location"], verifier)
        assert stepped["acr"] == "urn:nixa:loa:high"
        assert stepped["sid"] == first["sid"] and stepped["sub"] == first["sub"]

    # 2. operator sign-in (no national ID) → proofing once through the registry → linked
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b2:
        r, q, verifier = authorize(b2, portal, acr_values="urn:nixa:loa:substantial")
        page = b2.get(r.headers["location"]).text
        r = b2.post(form_action(page, "/redirect/operator"), data={"csrf": hidden(page, "csrf"), "login_hint": "0912345678"})
        assert r.status_code == 303 and r.headers["location"].startswith(federation["operator"].issuer)
        params = sign_in_at_upstream(r.headers["location"], federation["callback"])
        r = b2.get("/login/callback/operator", params=params)
        assert r.status_code == 303 and r.headers["location"].endswith("/proofing"), r.text
        page = b2.get(r.headers["location"]).text
        assert "Nhà mạng" not in page and "Dân cư" in page  # only sources that prove the ID
        assert "/password/population" not in page  # knowing the details is not a proof
        r = consent_if_asked(b2, registry_otp(b2, federation, page))  # the code goes to the phone on record
        via_operator = redeem_claims(http, portal, r.headers["location"], verifier)
        assert via_operator["acr"] == "urn:nixa:loa:substantial"
        assert via_operator["sub"] == first["sub"]

    # 3. certificate alone in a fresh browser → high, same sub; another sector → another sub
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b3:
        r, q, verifier = authorize(b3, portal, acr_values="urn:nixa:loa:high")
        r = consent_if_asked(b3, certificate_sign_in(b3, federation, b3.get(r.headers["location"]).text))
        via_cert = redeem_claims(http, portal, r.headers["location"], verifier)
        assert via_cert["acr"] == "urn:nixa:loa:high" and via_cert["sub"] == first["sub"]
        r, q, verifier = authorize(b3, other_sector)
        elsewhere = redeem_claims(http, other_sector, r.headers["location"], verifier)  # SSO: no second sign-in
        assert elsewhere["sub"] != first["sub"]

    with nixa.db.session() as s:
        person = s.scalar(select(Person).where(Person.national_id == DEMO_CITIZEN.pin))
        links = s.scalars(select(LinkedIdentity).where(LinkedIdentity.person_id == person.id)).all()
    assert {link.connector_id for link in links} >= {"population", "operator", "certificate"}
    assert len([link for link in links if link.connector_id != "local"]) == 3  # the demo persona's NIXA account may be linked too


def _rid(html: str) -> str:
    import re

    return re.search(r"/interaction/([A-Za-z0-9_-]+)/", html).group(1)


def test_refusals_are_friendly_pages(nixa, federation, app):  # noqa: ANN001
    from urllib.parse import quote

    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        r, _, _ = authorize(b, portal, acr_values="urn:nixa:loa:low")
        page = b.get(r.headers["location"]).text
        rid = _rid(page)
        known = {"pin": DEMO_CITIZEN.pin, "full_name": DEMO_CITIZEN.full_name, "date_of_birth": DEMO_CITIZEN.date_of_birth}
        deceased = {"pin": DEMO_DECEASED.pin, "full_name": DEMO_DECEASED.full_name, "date_of_birth": DEMO_DECEASED.date_of_birth}

        r = b.post(f"/interaction/{rid}/challenge/population", data={"csrf": hidden(page, "csrf"), **deceased})
        assert r.status_code == 403 and "đã mất" in r.text  # deceased: a clear page, no code sent, no session

        r = certificate_sign_in(b, federation, r.text, label="cuong-revoked")
        assert r.status_code == 401 and "thu hồi" in r.text

        # a client-certificate header from an address that is not a configured proxy
        pem = (Path(federation["pki"].dir) / "citizens" / "an.pem").read_text()
        r = b.post(f"/interaction/{rid}/certificate/certificate", data={"csrf": hidden(r.text, "csrf")},
                   headers={"x-ssl-client-cert": quote(pem)})
        assert r.status_code == 403 and "máy chủ tin cậy" in r.text

        # the registry is down: a clear page and a 503, never a 500
        federation["registry"].set_faults(fail_status=503)
        try:
            r = b.post(f"/interaction/{rid}/challenge/population", data={"csrf": hidden(r.text, "csrf"), **known})
            assert r.status_code == 503 and "không phản hồi" in r.text
        finally:
            federation["registry"].clear_faults()


def test_verified_claims_carry_source_and_time(nixa, federation, app, http):  # noqa: ANN001
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True, scope="openid profile address verified_claims")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        r, _, verifier = authorize(b, portal, scope="openid profile verified_claims")
        page = b.get(r.headers["location"]).text
        r = registry_otp(b, federation, page)
        cb = query_of(r.headers["location"])
    tokens = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": portal.redirect_uri,
                                       "code_verifier": verifier}, auth=(portal.client_id, portal.secret)).json()
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    registry = [v for v in info["verified_claims"] if v["verification"]["verification_process"] == "population"]
    assert registry, info
    assert registry[0]["verification"]["trust_framework"] == "vn_nixa"
    assert registry[0]["claims"]["birthdate"] == DEMO_CITIZEN.date_of_birth
    assert registry[0]["claims"]["name"] == DEMO_CITIZEN.full_name
    assert "national_id" not in registry[0]["claims"]  # not authorised for this client


def test_connector_edit_reopens_it_live(nixa, federation):  # noqa: ANN001
    before = nixa.connectors.entry("telecom")
    version = nixa.connectors.upsert("telecom", "telecom_sms", {**before.config, "resend_after": 7}, loa=int(before.loa),
                                     display_name_vi="SMS", display_name_en="SMS")
    after = nixa.connectors.entry("telecom")
    assert version == before.version + 1 == after.version
    assert after.instance is not before.instance and after.config["resend_after"] == 7
    assert nixa.connectors.upsert("telecom", "telecom_sms", after.config, loa=int(after.loa), display_name_vi="SMS",
                                  display_name_en="SMS") == version  # no change, no new version
    nixa.connectors.upsert("telecom", "telecom_sms", before.config, loa=int(before.loa), display_name_vi="SMS", display_name_en="SMS")


def test_staff_directory_sign_in_gives_roles(nixa, federation, app, http):  # noqa: ANN001
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True, scope="openid profile roles")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        r, _, verifier = authorize(b, portal, scope="openid profile roles")
        chooser = b.get(r.headers["location"]).text
        # staff sign in on their own entry, never among the citizens' methods
        assert "/password/mof" not in chooser and f'{r.headers["location"]}/staff' in chooser
        page = b.get(r.headers["location"] + "/staff").text
        assert "/local" not in page and "Đăng nhập cho cán bộ" in page
        bad = b.post(form_action(page, "/password/mof"), data={"csrf": hidden(page, "csrf"), "username": "nguyenvanan", "password": "nope"})
        assert bad.status_code == 401
        disabled = b.post(form_action(page, "/password/mof"), data={"csrf": hidden(page, "csrf"), "username": "phamthidung",
                                                                   "password": "Dung@Demo2024"})
        assert disabled.status_code == 403 and "vô hiệu hóa" in disabled.text
        r = b.post(form_action(page, "/password/mof"), data={"csrf": hidden(page, "csrf"), "username": "nguyenvanan",
                                                            "password": "An@Demo2024"})
        cb = query_of(r.headers["location"])
    tokens = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": portal.redirect_uri,
                                       "code_verifier": verifier}, auth=(portal.client_id, portal.secret)).json()
    assert claims_of(http, tokens["id_token"])["acr"] == "urn:nixa:loa:low"
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert "can-bo-thue" in info["roles"] and info["name"] == "Nguyễn Văn An"


def test_sms_only_sign_in_must_prove_national_id_once(nixa, federation, app, http):  # noqa: ANN001
    """A phone number proves possession, not who the person is: first time, proofing; then linked."""
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True)
    phone = "0987111222"
    for attempt in range(2):
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
            r, _, verifier = authorize(b, portal)
            page = b.get(r.headers["location"]).text
            r = b.post(form_action(page, "/challenge/telecom"), data={"csrf": hidden(page, "csrf"), "phone": phone})
            assert r.status_code == 303, r.status_code
            otp_page = b.get(r.headers["location"]).text
            code = latest_code(federation["sms"].base_url, "+84987111222")
            r = b.post(form_action(otp_page, "/otp"), data={"csrf": hidden(otp_page, "csrf"), "otp": code, "action": "verify"})
            if attempt == 0:
                assert r.headers["location"].endswith("/proofing")
                page = b.get(r.headers["location"]).text
                r = registry_otp(b, federation, page)
            else:
                assert "code=" in r.headers["location"]  # linked the first time: no proofing again
            claims = redeem_claims(http, portal, r.headers["location"], verifier)
            assert claims["amr"] and "sms" in claims["amr"]
    with nixa.db.session() as s:
        person = s.scalar(select(Person).where(Person.national_id == DEMO_CITIZEN.pin))
        linked = s.scalar(select(LinkedIdentity).where(LinkedIdentity.connector_id == "telecom", LinkedIdentity.subject == "+84987111222"))
    assert linked is not None and linked.person_id == person.id


def test_registry_is_the_authority_on_a_locked_id_whatever_the_method(nixa, federation, app):  # noqa: ANN001
    import httpx
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True)
    status_url = f"{federation['registry'].base_url}/_sandbox/citizens/{DEMO_CITIZEN.pin}/status"
    httpx.put(status_url, json={"status": "locked"}, timeout=5).raise_for_status()
    try:
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
            r, _, _ = authorize(b, portal, acr_values="urn:nixa:loa:high")
            r = certificate_sign_in(b, federation, b.get(r.headers["location"]).text)  # a valid certificate...
            assert r.status_code == 403 and "bị khóa" in r.text  # ...but the ID is locked at the registry
            assert "code=" not in r.headers.get("location", "")
    finally:
        httpx.put(status_url, json={"status": "active"}, timeout=5).raise_for_status()


def test_refresh_rechecks_the_staff_account_at_the_directory(nixa, federation, app, http):  # noqa: ANN001
    """Dex-style: each refresh asks the source again; a disabled account ends the grant."""
    import ldap3
    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True, scope="openid profile offline_access")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        r, _, verifier = authorize(b, portal, scope="openid profile offline_access")
        page = b.get(r.headers["location"] + "/staff").text
        r = b.post(form_action(page, "/password/mof"), data={"csrf": hidden(page, "csrf"), "username": "tranthibinh",
                                                            "password": "Binh@Demo2024"})
        cb = query_of(r.headers["location"])
    tokens = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": portal.redirect_uri,
                                       "code_verifier": verifier}, auth=(portal.client_id, portal.secret)).json()
    refresh = lambda token: http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},  # noqa: E731
                                      auth=(portal.client_id, portal.secret))
    first = refresh(tokens["refresh_token"])
    assert first.status_code == 200, first.text  # still active at the directory

    dn = "uid=tranthibinh,ou=people,ou=mof,dc=gov,dc=vn"
    admin = federation["directory"].admin_connection()
    admin.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})
    try:
        second = refresh(first.json()["refresh_token"])
        assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
        info = http.get("/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
        assert info.status_code == 401  # the grant is revoked, its access tokens with it
    finally:
        admin.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
        admin.unbind()


def test_mtls_certificate_from_the_trusted_proxy_signs_in_at_high(nixa, federation, app, http):  # noqa: ANN001
    """nginx terminates mTLS and forwards `$ssl_client_escaped_cert`; NIXA believes the header
    only from the configured proxy address (10.9.8.7 in this fixture)."""
    from urllib.parse import quote

    from starlette.testclient import TestClient

    portal = register_client(nixa, nixa_first_party=True)
    pem = (Path(federation["pki"].dir) / "citizens" / "an.pem").read_text()
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("10.9.8.7", 44321)) as b:
        r, _, verifier = authorize(b, portal, acr_values="urn:nixa:loa:high")
        page = b.get(r.headers["location"]).text
        r = b.post(form_action(page, "/certificate/certificate"), data={"csrf": hidden(page, "csrf")},
                   headers={"x-ssl-client-cert": quote(pem)})
        assert r.status_code == 303, (r.status_code, r.text[r.text.find("role=\"alert\""):][:300])
        claims = redeem_claims(http, portal, r.headers["location"], verifier)
    assert claims["acr"] == "urn:nixa:loa:high"
