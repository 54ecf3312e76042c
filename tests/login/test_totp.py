"""The NIXA password plus an authenticator app (TOTP) or a recovery code as a second step:
substantial only when both succeed in one sign-in, each code once, one step of clock skew, every
check throttled, and the recovery (a code used, every factor reset after a re-proof through the
registry) told to the phone on record and audited. Every counterpart is real (conftest.py)."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

import pyotp
import pytest
from sqlalchemy import text

from idp.identity import factors
from idp.login.session import csrf_token
from tests.conftest import form_action, hidden, register_client
from tests.connectors.telecom.outbox import outbox
from tests.login.support import redeem_claims, registry_otp
from tests.login.test_identity_assurance import (
    SUBSTANTIAL,
    RegistryCitizen,
    events,
    fresh_citizen,
    login_page,
    own_browser,
    person_by_pin,
)

NOW = time.time


@dataclass
class Holder:
    """A registry-proven person with a NIXA password and, once enrolled, an authenticator app."""

    person_id: str
    username: str
    password: str
    citizen: RegistryCitizen
    secret: str | None = None

    @property
    def phone(self) -> str:
        return self.citizen.phone

    def code(self, offset: float = 0) -> str:
        assert self.secret
        return pyotp.TOTP(self.secret).at(NOW() + offset)


@pytest.fixture()
def portal(nixa):  # noqa: ANN001, ANN201
    """A first-party portal (no consent page)."""
    return register_client(nixa, nixa_first_party=True)


def proven_person(nixa, fed, app) -> Holder:  # noqa: ANN001
    """A fresh citizen signs in through the registry (phone on record), then gets a password."""
    citizen = fresh_citizen(fed)
    with own_browser(app) as b:
        _, page, _ = login_page(b, register_client(nixa, nixa_first_party=True), acr_values=SUBSTANTIAL)
        assert "code=" in registry_otp(b, fed, page, citizen, citizen.phone).headers["location"]
    person = person_by_pin(nixa, citizen.pin)
    username, password = f"holder-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    assert nixa.people.add_local_account(username, password, national_id=citizen.pin) == person.id
    return Holder(person.id, username, password, citizen)


def enrolled(nixa, fed, app) -> Holder:  # noqa: ANN001
    """The account page's enrolment, confirmed with the code of the previous time step (so the
    current step is still unspent)."""
    holder = proven_person(nixa, fed, app)
    factors.start_totp(nixa, holder.person_id)
    holder.secret = factors.enrolment_secret(nixa, holder.person_id)
    factors.confirm_totp(nixa, holder.person_id, holder.code(-30), ip="203.0.113.50", browser=None)
    return holder


def after_password(b, portal, holder: Holder) -> tuple[str, str, str]:  # noqa: ANN001
    """A request at substantial, through its password step; returns (rid, next page, verifier)."""
    rid, page, verifier = login_page(b, portal, acr_values=SUBSTANTIAL)
    r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": holder.username, "password": holder.password})
    assert r.status_code == 303 and r.headers["location"] == f"/interaction/{rid}", (r.status_code, r.text[:300])
    return rid, b.get(f"/interaction/{rid}").text, verifier


def second_step(b, page: str, method: str, code: str):  # noqa: ANN001, ANN201
    return b.post(form_action(page, f"/{method}"), data={"csrf": hidden(page, "csrf"), "code": code})


# ---- the level ----------------------------------------------------------------------------------


def test_password_plus_totp_is_substantial_with_amr_pwd_otp(nixa, federation, app, portal, http):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        _, page, verifier = after_password(b, portal, holder)
        assert 'id="method-totp" open' in page and "/account/recover" in page  # the second step, open; "lost your device?"
        r = second_step(b, page, "totp", holder.code())
        assert r.status_code == 303 and "code=" in r.headers["location"], r.text[:300]
        claims = redeem_claims(http, portal, r.headers["location"], verifier)
    assert claims["acr"] == SUBSTANTIAL
    assert {"pwd", "otp"} <= set(claims["amr"])
    assert events(nixa, "totp.used", holder.person_id)


def test_the_password_alone_stays_low_and_cannot_satisfy_substantial(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        rid, page, _ = after_password(b, portal, holder)
        session = nixa.sessions.load(b.cookies.get("nixa_session"))
        assert session.loa == 1 and session.amr == ["pwd"]
        r = b.post(f"/interaction/{rid}/consent", data={"csrf": hidden(page, "csrf"), "decision": "allow"})
        assert r.headers["location"] == f"/interaction/{rid}"  # no code for a low session
        # a password from an earlier request does not count: a new request asks for it again
        _, fresh, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        assert 'id="method-totp"' not in fresh and "/local" in fresh


def test_a_person_without_a_confirmed_app_is_not_lifted(nixa, federation, app, portal):  # noqa: ANN001
    holder = proven_person(nixa, federation, app)
    factors.start_totp(nixa, holder.person_id)  # enrolment started, never confirmed
    holder.secret = factors.enrolment_secret(nixa, holder.person_id)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": holder.username, "password": holder.password})
        assert r.status_code == 403 and "ứng dụng xác thực" in r.text
        assert b.cookies.get("nixa_session") is None
        r = b.post(f"/interaction/{rid}/totp", data={"csrf": hidden(page, "csrf"), "code": holder.code()})
        assert r.status_code == 400  # never offered
    assert [e for e in events(nixa, "login.failed", holder.person_id) if e.data.get("reason") == "no_second_factor"]


def test_the_second_step_cannot_be_posted_when_not_offered(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)  # no password step yet
        csrf = hidden(page, "csrf")
        for method in ("totp", "recovery-code"):
            r = b.post(f"/interaction/{rid}/{method}", data={"csrf": csrf, "code": holder.code()})
            assert r.status_code == 400 and b.cookies.get("nixa_session") is None
        # without recovery codes, the recovery-code step is not offered even after the password
        _, page, _ = after_password(b, portal, holder)
        assert "/recovery-code" not in page
        rid = form_action(page, "/totp").split("/")[2]
        assert b.post(f"/interaction/{rid}/recovery-code", data={"csrf": hidden(page, "csrf"), "code": "AAAA"}).status_code == 400


# ---- each code once, one step of skew -----------------------------------------------------------


def test_a_code_is_accepted_once(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    code = holder.code()
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        assert "code=" in second_step(b, page, "totp", code).headers["location"]
    with own_browser(app) as b:  # the same code replayed within its window, from another browser
        _, page, _ = after_password(b, portal, holder)
        r = second_step(b, page, "totp", code)
        assert r.status_code == 401 and "location" not in r.headers
        r = second_step(b, page, "totp", holder.code(-30))  # an earlier step than the one spent
        assert r.status_code == 401
    assert [e for e in events(nixa, "totp.refused", holder.person_id) if e.data.get("reason") == "replayed"]


def test_one_step_of_clock_skew_is_accepted_two_are_not(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        assert second_step(b, page, "totp", holder.code(+60)).status_code == 401
        assert "code=" in second_step(b, page, "totp", holder.code(+30)).headers["location"]
    late = proven_person(nixa, federation, app)  # and behind: the enrolment's first code
    factors.start_totp(nixa, late.person_id)
    late.secret = factors.enrolment_secret(nixa, late.person_id)
    refused = None
    try:
        factors.confirm_totp(nixa, late.person_id, late.code(-60), ip="203.0.113.51", browser=None)
    except factors.FactorRefused as err:
        refused = err.code
    assert refused == "wrong_code" and not factors.has_confirmed_totp(nixa, late.person_id)
    factors.confirm_totp(nixa, late.person_id, late.code(-30), ip="203.0.113.51", browser=None)
    assert factors.has_confirmed_totp(nixa, late.person_id)


# ---- recovery codes -----------------------------------------------------------------------------


def test_a_recovery_code_signs_in_once_and_the_person_is_told(nixa, federation, app, portal, http):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    codes = factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    assert len(codes) == 10 and len(set(codes)) == 10
    sent_before = len(outbox(federation["sms"].base_url, holder.phone))
    with own_browser(app) as b:
        _, page, verifier = after_password(b, portal, holder)
        r = second_step(b, page, "recovery-code", codes[3].lower().replace("-", " "))  # typed loosely
        assert "code=" in r.headers["location"], r.text[:300]
        claims = redeem_claims(http, portal, r.headers["location"], verifier)
    assert claims["acr"] == SUBSTANTIAL and {"pwd", "otp"} <= set(claims["amr"])
    assert factors.recovery_codes_left(nixa, holder.person_id) == 9
    assert [e.data["left"] for e in events(nixa, "recovery.code_used", holder.person_id)] == [9]
    notices = outbox(federation["sms"].base_url, holder.phone)
    assert len(notices) > sent_before and "ma khoi phuc" in notices[0]["text"]
    assert [e for e in events(nixa, "notification.sent", holder.person_id) if e.data.get("kind") == "recovery.code_used"]
    with own_browser(app) as b:  # single use
        _, page, _ = after_password(b, portal, holder)
        assert second_step(b, page, "recovery-code", codes[3]).status_code == 401


def test_new_recovery_codes_void_the_old_ones(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    old = factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    new = factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    assert not set(old) & set(new) and factors.recovery_codes_left(nixa, holder.person_id) == 10
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        assert second_step(b, page, "recovery-code", old[0]).status_code == 401
        assert "code=" in second_step(b, page, "recovery-code", new[0]).headers["location"]
    assert len(events(nixa, "recovery.codes_generated", holder.person_id)) == 2


# ---- the throttle -------------------------------------------------------------------------------


def _until_throttled(b, page: str, method: str, wrong: str) -> int:  # noqa: ANN001
    limit = 10  # login_attempts_per_window: the account-and-address limit is reached first
    for attempt in range(1, limit + 2):
        r = second_step(b, page, method, wrong)
        if r.status_code == 429:
            assert "phút" in r.text  # the lock is the 15-minute window: said in minutes
            return attempt
        assert r.status_code == 401
    raise AssertionError("never throttled")


def test_wrong_app_codes_are_throttled_and_then_even_the_right_one_waits(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        right = holder.code()
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        assert _until_throttled(b, page, "totp", wrong) == 11
        r = second_step(b, page, "totp", right)
        assert r.status_code == 429 and "location" not in r.headers
    assert factors.has_confirmed_totp(nixa, holder.person_id)
    assert [e for e in events(nixa, "totp.refused", holder.person_id) if e.data.get("reason") == "throttled"]


def test_wrong_recovery_codes_are_throttled_and_then_even_a_right_one_waits(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    codes = factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        assert _until_throttled(b, page, "recovery-code", "2222-3333-4444-5555") == 11
        assert second_step(b, page, "recovery-code", codes[0]).status_code == 429
    assert factors.recovery_codes_left(nixa, holder.person_id) == 10  # the right code was not even checked


# ---- at rest ------------------------------------------------------------------------------------


def test_the_secret_and_the_codes_are_not_in_the_database(nixa, federation, app):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    codes = factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    with nixa.db.session() as s:
        [sealed] = s.execute(text("SELECT secret_sealed FROM totp_factors WHERE person_id = :p"), {"p": holder.person_id}).one()
        hashes = [row[0] for row in s.execute(text("SELECT code_hash FROM recovery_codes WHERE person_id = :p"), {"p": holder.person_id})]
    raw = bytes(sealed)
    assert holder.secret.encode() not in raw and base64.b32decode(holder.secret) not in raw
    assert len(hashes) == 10 and not any(c.replace("-", "") in h.upper() or c in h for c in codes for h in hashes)
    # the seal is bound to its person: the same blob under another person's row does not open
    other = enrolled(nixa, federation, app)
    with nixa.db.session() as s:
        s.execute(text("UPDATE totp_factors SET secret_sealed = :b WHERE person_id = :p"), {"b": raw, "p": other.person_id})
    with pytest.raises(factors.FactorRefused) as refused:  # refused like a wrong code, never accepted
        factors.verify_second_factor(nixa, other.person_id, "totp", holder.code(), ip=None, request_id="r", browser=None)
    assert refused.value.code == "factor_unreadable"


def test_a_secret_altered_in_the_database_refuses_every_code_with_a_page_not_a_500(nixa, federation, app, portal):  # noqa: ANN001
    # The attacker: someone who can write the database (a stolen backup restored, an insider)
    # copies their own sealed secret onto a victim's row to pass the victim's second step with
    # their own app. The seal is bound to its person: no code passes, the person is told to use
    # a recovery code or call support, and the refusal is audited with its reason.
    attacker, victim = enrolled(nixa, federation, app), enrolled(nixa, federation, app)
    with nixa.db.session() as s:
        [sealed] = s.execute(text("SELECT secret_sealed FROM totp_factors WHERE person_id = :p"), {"p": attacker.person_id}).one()
        s.execute(text("UPDATE totp_factors SET secret_sealed = :b WHERE person_id = :p"), {"b": bytes(sealed), "p": victim.person_id})
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, victim)
        for code in (attacker.code(), victim.code()):
            r = second_step(b, page, "totp", code)
            assert r.status_code == 401 and "code=" not in r.headers.get("location", ""), r.text[:300]
            assert "Không đọc được ứng dụng xác thực" in r.text
    refusals = [e.data.get("reason") for e in events(nixa, "totp.refused", victim.person_id)]
    assert refusals.count("factor_unreadable") == 2
    # and the account page still opens for the victim (where they remove it and add it again)
    assert factors.enrolment_secret(nixa, victim.person_id) is None


# ---- every factor lost ----------------------------------------------------------------------------


def test_lost_device_re_proof_through_the_registry_then_reset_notifies_and_is_audited(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    factors.generate_recovery_codes(nixa, holder.person_id, ip=None)
    with own_browser(app) as b:
        _, page, _ = after_password(b, portal, holder)
        r = b.get("/account/recover")  # "Mất thiết bị?": a fresh sign-in at substantial for the account page
        assert r.status_code == 303 and "prompt=login" in r.headers["location"]
        r = b.get(r.headers["location"])
        chooser = b.get(r.headers["location"]).text
        r = registry_otp(b, federation, chooser, holder.citizen, holder.phone)  # details + code to the phone on record
        while r.status_code == 303 and not r.headers["location"].startswith("/account?"):
            r = b.get(r.headers["location"])
        assert r.headers["location"].startswith("/account?notice=recover"), r.headers.get("location")
        page = b.get("/account").text
        assert 'action="/account/second-factors/reset"' in page
        csrf = hidden(page, "csrf")
        r = b.post("/account/second-factors/reset", data={"csrf": csrf})
        assert r.status_code == 303 and "notice=factors_reset" in r.headers["location"]
    assert not factors.has_confirmed_totp(nixa, holder.person_id) and factors.recovery_codes_left(nixa, holder.person_id) == 0
    [reset] = events(nixa, "recovery.reset", holder.person_id)
    assert reset.data["totp_removed"] is True and reset.data["codes_removed"] == 10
    assert "dat lai" in outbox(federation["sms"].base_url, holder.phone)[0]["text"]
    assert [e for e in events(nixa, "notification.sent", holder.person_id) if e.data.get("kind") == "recovery.reset"]


def test_the_csrf_token_of_the_step_is_bound_to_the_browser(nixa, federation, app, portal):  # noqa: ANN001
    holder = enrolled(nixa, federation, app)
    with own_browser(app) as b:
        rid, page, _ = after_password(b, portal, holder)
        forged = csrf_token(nixa.csrf_key, "another-browser", rid)
        r = b.post(f"/interaction/{rid}/totp", data={"csrf": forged, "code": holder.code()})
        assert r.status_code == 403
