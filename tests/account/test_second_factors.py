"""The account page's authenticator app and recovery codes: enrolled only in the page's
substantial session and active only after a first code, removed and reset only after a sign-in
within 5 minutes, codes shown once; every change audited and told to the person."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import text

from idp.account import signin
from idp.identity import factors
from tests.account.test_account import events, sent_to_sign_in
from tests.conftest import make_citizen


def _secret(page: str) -> str:
    match = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page)
    assert match, "no secret shown"
    return match.group(1).replace(" ", "")


def _enrol(account) -> str:  # noqa: ANN001
    r = account.post("/account/totp/start")
    assert r.status_code == 303 and r.headers["location"].endswith("notice=totp_started#second-factors")
    page = account.page().text
    assert "<svg" in page and 'class="qr"' in page  # the QR code, inline
    return _secret(page)


def test_enrolment_shows_a_qr_code_and_is_active_only_after_the_first_code(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    secret = _enrol(account)
    assert factors.totp_state(nixa, citizen.person_id).confirmed_at is None
    assert not factors.second_factors(nixa, citizen.person_id)  # not yet a factor
    wrong = account.post("/account/totp/confirm", code="000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    assert wrong.status_code == 409 and "Mã không đúng" in wrong.text
    r = account.post("/account/totp/confirm", code=pyotp.TOTP(secret).now())
    assert r.status_code == 303 and "notice=totp_enrolled" in r.headers["location"]
    assert factors.second_factors(nixa, citizen.person_id) == ["totp"]
    page = account.page().text
    assert 'id="totp-active"' in page and "totp-secret" not in page  # an active factor's secret is never shown again
    assert events(nixa, citizen.person_id, "totp.enrolled")
    assert [e for e in events(nixa, citizen.person_id, "notification.failed") if e.data.get("kind") == "totp.enrolled"]  # tried


def test_only_a_substantial_session_may_enrol(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    low = open_accounts(citizen.person_id, loa=1)
    sent_to_sign_in(low.post("/account/totp/start"))
    assert factors.totp_state(nixa, citizen.person_id) is None


def test_removing_the_app_needs_a_sign_in_within_five_minutes(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    secret = _enrol(account)
    account.post("/account/totp/confirm", code=pyotp.TOTP(secret).now())
    assert account.post("/account/totp/start").status_code == 409  # one app at a time: remove it first
    account.age(signin.SENSITIVE_MAX_AGE + 60)
    r = account.post("/account/totp/remove")
    q = sent_to_sign_in(r, max_age=signin.SENSITIVE_MAX_AGE)
    assert q["prompt"] == "login" and factors.has_confirmed_totp(nixa, citizen.person_id)
    account.age(10)
    r = account.post("/account/totp/remove")
    assert r.status_code == 303 and "notice=totp_removed" in r.headers["location"]
    assert factors.totp_state(nixa, citizen.person_id) is None
    assert events(nixa, citizen.person_id, "totp.removed")


def test_recovery_codes_are_shown_once_stored_hashed_and_regenerating_voids_them(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    r = account.post("/account/recovery-codes")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    first = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", r.text)
    assert len(first) == 10
    later = account.page().text
    assert not any(code in later for code in first) and "10" in later  # never shown again; the count is
    with nixa.db.session() as s:
        stored = [row[0] for row in s.execute(text("SELECT code_hash FROM recovery_codes WHERE person_id = :p"), {"p": citizen.person_id})]
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in first}
    second = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", account.post("/account/recovery-codes").text)
    assert len(second) == 10 and not set(first) & set(second)
    assert factors._spend_recovery_code(nixa, citizen.person_id, first[0]) == "wrong_code"  # the old set is void
    assert factors._spend_recovery_code(nixa, citizen.person_id, second[0]) is None
    assert len(events(nixa, citizen.person_id, "recovery.codes_generated")) == 2
    account.age(signin.SENSITIVE_MAX_AGE + 60)
    sent_to_sign_in(account.post("/account/recovery-codes"), max_age=signin.SENSITIVE_MAX_AGE)


def test_wrong_first_codes_are_throttled_then_even_the_right_one_waits(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    secret = _enrol(account)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    statuses = [account.post("/account/totp/confirm", code=wrong) for _ in range(11)]
    assert "Quá nhiều mã sai" in statuses[-1].text and all("Mã không đúng" in r.text for r in statuses[:10])
    r = account.post("/account/totp/confirm", code=pyotp.TOTP(secret).now())
    assert r.status_code == 409 and "Quá nhiều mã sai" in r.text
    assert factors.totp_state(nixa, citizen.person_id).confirmed_at is None


def test_the_reset_removes_every_factor_after_a_fresh_sign_in_and_is_audited(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    secret = _enrol(account)
    account.post("/account/totp/confirm", code=pyotp.TOTP(secret).now())
    account.post("/account/recovery-codes")
    account.age(signin.SENSITIVE_MAX_AGE + 60)
    r = account.client.get("/account/recover")  # "Lost your device?": a fresh sign-in first
    assert sent_to_sign_in(r, max_age=signin.SENSITIVE_MAX_AGE)["prompt"] == "login"
    sent_to_sign_in(account.post("/account/second-factors/reset"), max_age=signin.SENSITIVE_MAX_AGE)
    assert factors.has_confirmed_totp(nixa, citizen.person_id)
    account.age(10)
    r = account.client.get("/account/recover")
    assert r.status_code == 303 and r.headers["location"] == "/account?notice=recover#second-factors"
    assert "Bạn vừa xác minh lại danh tính" in account.page("/account", notice="recover").text
    r = account.post("/account/second-factors/reset")
    assert r.status_code == 303 and "notice=factors_reset" in r.headers["location"]
    assert factors.totp_state(nixa, citizen.person_id) is None and factors.recovery_codes_left(nixa, citizen.person_id) == 0
    [reset] = events(nixa, citizen.person_id, "recovery.reset")
    assert reset.data["totp_removed"] is True and reset.data["codes_removed"] == 10
    assert [e for e in events(nixa, citizen.person_id, "notification.failed") if e.data.get("kind") == "recovery.reset"]
    assert account.post("/account/second-factors/reset").status_code == 409  # nothing left to reset


def test_an_enrolment_waiting_for_its_code_is_replaced_by_a_new_one(nixa, open_accounts):  # noqa: ANN001, F811
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    first = _enrol(account)
    second = _enrol(account)
    assert first != second and factors.enrolment_secret(nixa, citizen.person_id) == second
