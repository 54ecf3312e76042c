"""A merge moves the second factors (admin/people.py Support.merge → nixa.people.merge): the
source's passkeys, authenticator app and recovery codes become the target's, not lost and not
copied (a credential id is one row), and the target signs in with them; the source person no
longer exists to sign in as; the merge, with its reason and what moved, is audited and shown to
the citizen in their access log. Two authenticator apps are refused rather than one dropped."""

from __future__ import annotations

import secrets
import time

import pyotp
import pytest
from sqlalchemy import func, select

from admin.roles import Role
from idp.account import service as account
from idp.identity import factors, passkeys
from idp.store.models import RecoveryCode, TotpFactor, WebAuthnCredential
from tests.admin.operators import signed_in
from tests.conftest import make_citizen
from tests.login.test_passkeys import enrol
from tests.oidc.test_audit import events_for

API = "/admin/api/people/merge"
WHY = "hai bản ghi của cùng một người (phiếu 108)"


@pytest.fixture(scope="module")
def agent(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.SUPPORT).headers()


def with_authenticator_app(nixa, person_id: str) -> str:  # noqa: ANN001
    factors.start_totp(nixa, person_id)
    secret = factors.enrolment_secret(nixa, person_id)
    factors.confirm_totp(nixa, person_id, pyotp.TOTP(secret).at(time.time() - 30), ip="192.0.2.9", browser=None)
    return secret


def second_step(nixa, person_id: str, method: str, code: str) -> None:  # noqa: ANN001
    factors.verify_second_factor(nixa, person_id, method, code, ip="192.0.2.9", request_id=secrets.token_hex(8), browser=None)


def passkey_sign_in(nixa, device, passkey) -> passkeys.PasskeySignIn:  # noqa: ANN001
    rid, browser = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    return passkeys.verify_sign_in(nixa, rid, browser, device.get(passkeys.sign_in_options(nixa, rid, browser), passkey), ip="192.0.2.9")


def test_after_a_merge_the_target_signs_in_with_the_sources_factors_and_the_source_is_gone(http, nixa, agent):  # noqa: ANN001
    into, source = make_citizen(nixa), make_citizen(nixa, name="Trần Văn (bản ghi trùng)")
    secret = with_authenticator_app(nixa, source.person_id)
    codes = factors.generate_recovery_codes(nixa, source.person_id, ip=None)
    device, source_key = enrol(nixa, source.person_id)
    own_device, own_key = enrol(nixa, into.person_id)
    assert passkey_sign_in(nixa, device, source_key).person_id == source.person_id

    r = http.post(API, json={"source": source.person_id, "into": into.person_id, "reason": WHY}, headers=agent)
    assert r.status_code == 200, r.text

    # Moved, not copied: one row per credential, the app and the codes under the target.
    with nixa.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebAuthnCredential).where(WebAuthnCredential.id == source_key.id)) == 1
        assert {c.person_id for c in s.scalars(select(WebAuthnCredential).where(
            WebAuthnCredential.id.in_([source_key.id, own_key.id])))} == {into.person_id}
        assert s.get(TotpFactor, source.person_id) is None and s.get(TotpFactor, into.person_id) is not None
        assert s.scalar(select(func.count()).select_from(RecoveryCode).where(RecoveryCode.person_id == source.person_id)) == 0
    # The target signs in with each of the source's factors: the passkey (its authenticator still
    # holds the source's user handle), a code from the app, a recovery code.
    assert passkey_sign_in(nixa, device, source_key).person_id == into.person_id
    assert passkey_sign_in(nixa, own_device, own_key).person_id == into.person_id
    code = pyotp.TOTP(secret).now()
    second_step(nixa, into.person_id, factors.TOTP_METHOD, code)
    with pytest.raises(factors.FactorRefused, match="replayed"):  # the app's last step came along: no code twice
        second_step(nixa, into.person_id, factors.TOTP_METHOD, code)
    second_step(nixa, into.person_id, factors.RECOVERY_METHOD, codes[0])
    assert factors.recovery_codes_left(nixa, into.person_id) == len(codes) - 1
    assert factors.second_factors(nixa, into.person_id) == [factors.TOTP_METHOD, factors.RECOVERY_METHOD]

    # The source person is no more: nothing signs in as them.
    assert nixa.people.get(source.person_id) is None
    with pytest.raises(factors.FactorRefused, match="no_factor"):
        second_step(nixa, source.person_id, factors.TOTP_METHOD, pyotp.TOTP(secret).now())
    with pytest.raises(factors.FactorRefused, match="wrong_code"):
        second_step(nixa, source.person_id, factors.RECOVERY_METHOD, codes[1])
    assert nixa.people.check_local_password(source.username, source.password) == into.person_id

    devices = account.second_factors_json(nixa, into.person_id)
    assert len(devices["passkeys"]) == 2 and devices["authenticator_app"]["confirmed_at"]
    merged = [e.data for e in events_for(nixa, type="admin.changed", person_id=into.person_id) if e.data["what"] == "person.merge"][-1]
    assert merged["reason"] == WHY and merged["actor"]["via"] == "api"
    assert merged["after"]["second_factors_moved"] == {"passkeys": 1, "authenticator_app": True, "recovery_codes": len(codes)}
    assert len(merged["before"]["source"]["devices"]["passkeys"]) == 1 and len(merged["after"]["devices"]["passkeys"]) == 2
    assert secret not in str(merged) and codes[2] not in str(merged)
    shown = [row.claims for row in account.access_log(nixa, into.person_id, account.AccessLogFilter())[0]]
    assert ["support_merge", WHY] in shown  # the citizen sees it, with the reason


def test_two_authenticator_apps_are_refused_and_nothing_changes(http, nixa, agent):  # noqa: ANN001
    into, source = make_citizen(nixa), make_citizen(nixa)
    mine, theirs = with_authenticator_app(nixa, into.person_id), with_authenticator_app(nixa, source.person_id)
    r = http.post(API, json={"source": source.person_id, "into": into.person_id, "reason": WHY}, headers=agent)
    assert r.status_code == 409 and "authenticator app" in r.json()["error_description"]
    assert nixa.people.get(source.person_id) is not None
    with nixa.db.session() as s:
        assert s.get(TotpFactor, source.person_id) is not None and s.get(TotpFactor, into.person_id) is not None
    assert mine != theirs
    # Once the person removed one, the merge goes through and the other app works for the target.
    factors.remove_totp(nixa, into.person_id, ip=None)
    assert http.post(API, json={"source": source.person_id, "into": into.person_id, "reason": WHY}, headers=agent).status_code == 200
    second_step(nixa, into.person_id, factors.TOTP_METHOD, pyotp.TOTP(theirs).now())


def test_an_unfinished_enrolment_is_not_a_factor_and_does_not_block(http, nixa, agent):  # noqa: ANN001
    into, source = make_citizen(nixa), make_citizen(nixa)
    secret = with_authenticator_app(nixa, source.person_id)
    factors.start_totp(nixa, into.person_id)  # started on the target, never confirmed
    assert http.post(API, json={"source": source.person_id, "into": into.person_id, "reason": WHY}, headers=agent).status_code == 200
    assert factors.has_confirmed_totp(nixa, into.person_id)
    second_step(nixa, into.person_id, factors.TOTP_METHOD, pyotp.TOTP(secret).now())
