"""Passkey sign-in (idp/identity/passkeys.py, idp/login/passkey_routes.py), each attack against
the real routes with a software authenticator playing the citizen's device: a replayed or
foreign challenge, a removed credential, a passkey below the level asked, a cloned authenticator
(sign count going back), a POST for a method that was never offered."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from idp.identity import passkeys
from idp.store.models import AuditEvent, WebAuthnCredential
from tests.conftest import authorize, hidden, make_citizen, register_client
from tests.login.soft_authenticator import SoftAuthenticator
from tests.login.support import consent_if_asked, redeem_claims

ORIGIN = "http://testserver"  # the test app's issuer: RP ID "testserver"


def events(nixa, type_: str, person_id: str | None = None) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        query = select(AuditEvent).where(AuditEvent.type == type_)
        if person_id:
            query = query.where(AuditEvent.person_id == person_id)
        return list(s.scalars(query))


def enrol(nixa, person_id: str, loa: int = 2) -> tuple[SoftAuthenticator, object]:  # noqa: ANN001
    """A passkey registered from a session at `loa` (as the account page does), on a new device."""
    _, session = nixa.sessions.establish(None, person_id=person_id, loa=loa, amr=["otp"], method="test")
    browser = secrets.token_urlsafe(16)
    device = SoftAuthenticator(ORIGIN)
    credential, passkey = device.create(passkeys.registration_options(nixa, session, browser))
    passkeys.register(nixa, session, browser, credential, "Điện thoại", ip="198.51.100.9")
    return device, passkey


def chooser(browser, client, **params) -> tuple[str, str, str, str]:  # noqa: ANN001
    """The chooser page of a new request: (rid, csrf, page text, verifier)."""
    r, _, verifier = authorize(browser, client, **params)
    location = r.headers["location"]
    assert location.startswith("/interaction/"), location
    page = browser.get(location)
    assert page.status_code == 200, page.text
    return location.split("/")[2], hidden(page.text, "csrf"), page.text, verifier


def options(browser, rid: str, csrf: str) -> dict:  # noqa: ANN001
    r = browser.post(f"/interaction/{rid}/passkey/options", data={"csrf": csrf})
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["allowCredentials"] == [] and o["userVerification"] == "required" and o["rpId"] == "testserver"
    return o


def submit(browser, rid: str, csrf: str, credential: str):  # noqa: ANN001, ANN201
    return browser.post(f"/interaction/{rid}/passkey", data={"csrf": csrf, "credential": credential})


@pytest.fixture()
def citizen(nixa):  # noqa: ANN001, ANN201
    return make_citizen(nixa)


@pytest.fixture()
def client(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, nixa_first_party=True)


def test_usernameless_sign_in_reaches_the_passkeys_level_with_its_amr(nixa, browser, http, citizen, client):
    device, passkey = enrol(nixa, citizen.person_id, loa=2)
    rid, csrf, page, verifier = chooser(browser, client)
    assert f'action="/interaction/{rid}/passkey"' in page and 'src="/static/passkey.js"' in page and "<noscript>" in page
    r = submit(browser, rid, csrf, device.get(options(browser, rid, csrf)))
    assert r.status_code == 303, r.text
    claims = redeem_claims(http, client, consent_if_asked(browser, r).headers["location"], verifier)
    assert claims["amr"] == ["mfa", "pop"] and claims["acr"] == "urn:nixa:loa:substantial"
    with nixa.db.session() as s:
        row = s.get(WebAuthnCredential, passkey.id)
        assert row.sign_count == 1 and row.last_used_at is not None
    assert [e for e in events(nixa, "passkey.used", citizen.person_id) if e.data["credential"] == passkey.id]


def test_a_challenge_is_single_use(nixa, browser, citizen, client):
    device, passkey = enrol(nixa, citizen.person_id)
    rid, csrf, _, _ = chooser(browser, client)
    first = options(browser, rid, csrf)
    answer = device.get(first)
    tampered = answer.replace('"signature": "', '"signature": "AA')
    assert submit(browser, rid, csrf, tampered).status_code == 401  # spends the challenge
    r = submit(browser, rid, csrf, answer)  # a valid answer to a spent challenge
    assert r.status_code == 401 and "hết hạn hoặc đã được dùng" in r.text
    assert "nixa_session" not in r.headers.get("set-cookie", "")
    # After a sign-in, the same answer again, at a new request (prompt=login shows the chooser).
    answer = device.get(options(browser, rid, csrf))
    assert submit(browser, rid, csrf, answer).status_code == 303
    rid2, csrf2, _, _ = chooser(browser, client, prompt="login")
    options(browser, rid2, csrf2)
    r = submit(browser, rid2, csrf2, answer)
    assert r.status_code == 401
    assert [e for e in events(nixa, "passkey.refused", citizen.person_id) if e.data["reason"] == "passkey_invalid"]


def test_a_challenge_of_another_pending_request_is_refused(nixa, app, browser, citizen, client):
    device, _ = enrol(nixa, citizen.person_id)
    rid_a, csrf_a, _, _ = chooser(browser, client)
    rid_b, csrf_b, _, _ = chooser(browser, client)
    answer_for_a = device.get(options(browser, rid_a, csrf_a))
    options(browser, rid_b, csrf_b)
    r = submit(browser, rid_b, csrf_b, answer_for_a)
    assert r.status_code == 401 and "nixa_session" not in r.headers.get("set-cookie", "")
    # nor is request A's challenge usable from another browser (the request is bound to this one)
    from starlette.testclient import TestClient

    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as other:
        other.get("/")
        assert submit(other, rid_a, csrf_a, answer_for_a).status_code in (400, 403)
    assert submit(browser, rid_a, csrf_a, answer_for_a).status_code == 303  # where it belongs, it works


def test_an_assertion_for_a_removed_passkey_is_refused(nixa, browser, citizen, client):
    device, passkey = enrol(nixa, citizen.person_id)
    passkeys.remove(nixa, citizen.person_id, passkey.id, ip="198.51.100.9")
    rid, csrf, _, _ = chooser(browser, client)
    r = submit(browser, rid, csrf, device.get(options(browser, rid, csrf)))
    assert r.status_code == 401 and "không được đăng ký với NIXA" in r.text
    assert events(nixa, "passkey.removed", citizen.person_id)


def test_sign_count_regression_flags_the_passkey_and_refuses(nixa, browser, citizen, client):
    device, passkey = enrol(nixa, citizen.person_id)
    rid, csrf, _, _ = chooser(browser, client)
    assert submit(browser, rid, csrf, device.get(options(browser, rid, csrf), sign_count=7)).status_code == 303
    rid, csrf, _, _ = chooser(browser, client, prompt="login")
    r = submit(browser, rid, csrf, device.get(options(browser, rid, csrf), sign_count=7))  # a copy that signs with the old count
    assert r.status_code == 403 and "sao chép" in r.text
    with nixa.db.session() as s:
        row = s.get(WebAuthnCredential, passkey.id)
        assert row.flagged_at is not None and row.sign_count == 7
    [cloned] = events(nixa, "passkey.cloned", citizen.person_id)
    assert cloned.data["stored_count"] == 7 and cloned.data["presented_count"] == 7
    # flagged for good: even a growing count signs no one in now
    r = submit(browser, rid, csrf, device.get(options(browser, rid, csrf), sign_count=50))
    assert r.status_code == 403 and "đã bị khóa" in r.text


def test_a_post_for_a_passkey_never_offered_is_refused(nixa, browser, citizen, client):
    device, _ = enrol(nixa, citizen.person_id)
    r, _, _ = authorize(browser, client)
    rid = r.headers["location"].split("/")[2]  # the chooser was never shown: nothing offered
    from idp.login.session import csrf_token

    csrf = csrf_token(nixa.csrf_key, browser.cookies.get("nixa_browser"), rid)
    assert browser.post(f"/interaction/{rid}/passkey/options", data={"csrf": csrf}).status_code == 400
    r = submit(browser, rid, csrf, device.get({"challenge": passkeys.bytes_to_base64url(b"x" * 32)}))
    assert r.status_code == 400 and "không được đề nghị" in r.text
    assert [e for e in events(nixa, "login.failed") if e.data.get("method") == "passkey" and e.data.get("reason") == "method_not_offered"]


def test_a_substantial_passkey_cannot_satisfy_a_high_request(nixa, federation, browser, http, citizen, client):
    device, substantial = enrol(nixa, citizen.person_id, loa=2)
    rid, csrf, page, _ = chooser(browser, client, acr_values="urn:nixa:loa:high")
    assert f'action="/interaction/{rid}/passkey"' in page  # offered: a passkey bound at high could answer
    r = submit(browser, rid, csrf, device.get(options(browser, rid, csrf)))
    assert r.status_code == 403 and "mức thấp hơn" in r.text
    assert "nixa_session" not in r.headers.get("set-cookie", "")
    assert [e for e in events(nixa, "passkey.refused", citizen.person_id) if e.data["reason"] == "level_not_reached"]
    # one bound in a high (certificate) session does
    high_device, _ = enrol(nixa, citizen.person_id, loa=3)
    rid, csrf, _, verifier = chooser(browser, client, acr_values="urn:nixa:loa:high")
    r = submit(browser, rid, csrf, high_device.get(options(browser, rid, csrf)))
    assert r.status_code == 303, r.text
    assert redeem_claims(http, client, consent_if_asked(browser, r).headers["location"], verifier)["acr"] == "urn:nixa:loa:high"
