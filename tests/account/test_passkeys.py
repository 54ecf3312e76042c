"""Registering and removing passkeys on the account page: only after a recent substantial
sign-in, the challenge bound to the session, the level earned that of the session, removal only
after a sign-in within 5 minutes, each change audited and told to the person."""

from __future__ import annotations

import pytest

from idp.account import signin
from idp.identity import passkeys
from idp.store.models import WebAuthnCredential
from tests.account.test_account import events, sent_to_sign_in
from tests.conftest import make_citizen
from tests.login.soft_authenticator import SoftAuthenticator


ORIGIN = "http://testserver"


def creation_options(account) -> dict:  # noqa: ANN001
    r = account.post("/account/passkeys/options")
    assert r.status_code == 200, r.text
    return r.json()


def register(account, device: SoftAuthenticator, name: str = "Máy tính ở nhà"):  # noqa: ANN001, ANN201
    credential, passkey = device.create(creation_options(account))
    return account.post("/account/passkeys/register", credential=credential, name=name), passkey


@pytest.mark.parametrize("loa", [2, 3])
def test_a_passkey_earns_the_level_of_the_session_that_registered_it(nixa, open_accounts, loa):
    citizen = make_citizen(nixa)
    account = open_accounts(citizen.person_id, loa=loa, user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36")
    page = account.page().text
    assert 'id="passkeys"' in page and 'data-passkey="create"' in page and 'value="Chrome' in page  # the default name: this browser
    o = creation_options(account)
    assert o["authenticatorSelection"]["residentKey"] == "required"
    assert o["authenticatorSelection"]["userVerification"] == "required" and o["attestation"] == "none"
    assert o["rp"]["id"] == "testserver" and o["excludeCredentials"] == []
    r, passkey = register(account, SoftAuthenticator(ORIGIN))
    assert r.status_code == 303 and "notice=passkey_registered" in r.headers["location"]
    with nixa.db.session() as s:
        row = s.get(WebAuthnCredential, passkey.id)
        assert row.person_id == citizen.person_id and row.loa == loa and row.name == "Máy tính ở nhà"
    assert "Máy tính ở nhà" in account.page().text
    [registered] = events(nixa, citizen.person_id, "passkey.registered")
    assert registered.ip and registered.data["loa"] == loa
    told = events(nixa, citizen.person_id, "notification.sent") + events(nixa, citizen.person_id, "notification.failed")
    assert [e for e in told if e.data.get("kind") == "passkey.registered"]
    # the next registration excludes this one (one credential per authenticator)
    assert [c["id"] for c in creation_options(account)["excludeCredentials"]] == [passkey.id]


def test_registration_needs_a_recent_substantial_sign_in(nixa, open_accounts):
    citizen = make_citizen(nixa)
    low = open_accounts(citizen.person_id, loa=1)
    assert low.post("/account/passkeys/options").status_code == 401
    sent_to_sign_in(low.post("/account/passkeys/register", credential="{}", name="x"))
    old = open_accounts(citizen.person_id, loa=2)
    device = SoftAuthenticator(ORIGIN)
    credential, _ = device.create(creation_options(old))  # fetched while the sign-in was fresh
    old.age(signin.VIEW_MAX_AGE + 60)
    assert old.post("/account/passkeys/options").status_code == 401
    sent_to_sign_in(old.post("/account/passkeys/register", credential=credential, name="x"))
    # the service refuses it by itself too, whoever calls it
    with pytest.raises(passkeys.PasskeyRefused) as refused:
        passkeys.register(nixa, old.session, old.browser_id, credential, "x", ip=None)
    assert refused.value.code == "passkey_needs_substantial"
    with pytest.raises(passkeys.PasskeyRefused):
        passkeys.registration_options(nixa, low.session, low.browser_id)
    with nixa.db.session() as s:
        assert s.query(WebAuthnCredential).filter_by(person_id=citizen.person_id).count() == 0


def test_the_registration_challenge_is_bound_to_the_session_and_used_once(nixa, open_accounts):
    citizen = make_citizen(nixa)
    mine, other = open_accounts(citizen.person_id), open_accounts(citizen.person_id)
    device = SoftAuthenticator(ORIGIN)
    credential, _ = device.create(creation_options(mine))
    r = other.post("/account/passkeys/register", credential=credential, name="x")  # another session of the same person
    assert r.status_code == 409 and "hết hạn hoặc đã được dùng" in r.text
    assert mine.post("/account/passkeys/register", credential=credential, name="x").status_code == 303
    r = mine.post("/account/passkeys/register", credential=credential, name="x")  # the same answer again
    assert r.status_code == 409
    assert [e for e in events(nixa, citizen.person_id, "passkey.refused") if e.data["reason"] == "passkey_challenge_expired"]


def test_removal_needs_a_sign_in_within_five_minutes_and_only_ones_own(nixa, open_accounts):
    citizen, stranger = make_citizen(nixa), make_citizen(nixa)
    account = open_accounts(citizen.person_id)
    _, passkey = register(account, SoftAuthenticator(ORIGIN))
    thief = open_accounts(stranger.person_id)
    assert thief.post("/account/passkeys/remove", credential_id=passkey.id).status_code == 409
    account.age(signin.SENSITIVE_MAX_AGE + 30)
    q = sent_to_sign_in(account.post("/account/passkeys/remove", credential_id=passkey.id), max_age=signin.SENSITIVE_MAX_AGE)
    assert q["prompt"] == "login"
    assert passkeys.credentials(nixa, citizen.person_id)
    account.age(0)
    r = account.post("/account/passkeys/remove", credential_id=passkey.id)
    assert r.status_code == 303 and "notice=passkey_removed" in r.headers["location"]
    assert passkeys.credentials(nixa, citizen.person_id) == []
    [removed] = events(nixa, citizen.person_id, "passkey.removed")
    assert removed.data["credential"] == passkey.id and removed.ip
