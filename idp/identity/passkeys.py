"""Passkeys (WebAuthn, through py_webauthn): registered from the account page, used as the
usernameless `passkey` method of the sign-in chooser.

A passkey proves possession of a key the person unlocked (user verification); it does not prove
who the person is. That was proven by the sign-in that bound the key to the Person, so a passkey
earns the level of the session that registered it: substantial after a substantial sign-in, high
after a high (certificate) one. A stronger claim would let a weak proof mint a strong factor.

Challenges are single use (taken from the store), live CHALLENGE_TTL seconds and are bound: a
registration challenge to the SSO session and the browser, a sign-in challenge to the pending
request and the browser. A sign count that does not increase (once either side is non-zero)
means two copies of the key exist: the credential is flagged and signs no one in any more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from connectors.base import LevelOfAssurance
from idp.identity import notify
from idp.store.models import WebAuthnCredential

METHOD = "passkey"
# RFC 8176: "pop" (proof of possession of a key) and "mfa" (user verification is required, so the
# key was unlocked by a PIN or a biometric on top of possession). Not "hwk"/"swk" (attestation
# "none" does not say whether the key is in hardware; synced passkeys are not) nor "pin"/"fpt"/
# "face" (the authenticator does not say how it verified the person).
AMR = ["mfa", "pop"]
CHALLENGE_TTL = 300
HIGHEST_LOA = int(LevelOfAssurance.HIGH)  # what a passkey registered in a high session earns
MIN_REGISTER_LOA = int(LevelOfAssurance.SUBSTANTIAL)
REGISTER_MAX_AGE = 1800  # the account page's substantial sign-in (idp/account/signin.py VIEW_MAX_AGE)
NAME_MAX = 64
CREDENTIAL_JSON_MAX = 16_384


class PasskeyRefused(Exception):
    """A registration or an assertion NIXA will not accept; `code` names the reason shown."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class PasskeyView:
    id: str
    name: str
    loa: int
    created_at: float
    last_used_at: float | None
    flagged_at: float | None


@dataclass(frozen=True)
class PasskeySignIn:
    person_id: str
    loa: int
    credential_id: str


def relying_party(nixa: Any) -> tuple[str, str]:
    """(RP ID, origin): the issuer's host and origin (WebAuthn §5.1.3/§7.2 check both)."""
    parts = urlsplit(nixa.settings.issuer)
    return parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


def user_handle(nixa: Any, person_id: str) -> bytes:
    """The WebAuthn user.id: stable per person (one entry per person on an authenticator), and
    not the internal person id, which is never released (WebAuthn §14.6.1: no personal data)."""
    return hmac.new(nixa.stable["pairwise-subject"], b"webauthn-user\x00" + person_id.encode(), hashlib.sha256).digest()


def _h(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class PasskeyChallenges:
    """The typed repository of WebAuthn challenges in flight (keys `passkey-register:`,
    `passkey-signin:`): one per (session, browser) or (pending request, browser), taken once."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def issue_registration(self, sid: str, browser: str, challenge: bytes) -> None:
        self.store.put(f"passkey-register:{_h(sid, browser)}", bytes_to_base64url(challenge), CHALLENGE_TTL)

    def take_registration(self, sid: str, browser: str) -> bytes | None:
        value = self.store.take(f"passkey-register:{_h(sid, browser)}")
        return base64url_to_bytes(value) if value else None

    def issue_sign_in(self, rid: str, browser: str, challenge: bytes) -> None:
        self.store.put(f"passkey-signin:{_h(rid, browser)}", bytes_to_base64url(challenge), CHALLENGE_TTL)

    def take_sign_in(self, rid: str, browser: str) -> bytes | None:
        value = self.store.take(f"passkey-signin:{_h(rid, browser)}")
        return base64url_to_bytes(value) if value else None


# ---- the person's passkeys ------------------------------------------------------------------------


def credentials(nixa: Any, person_id: str) -> list[PasskeyView]:
    with nixa.db.session() as s:
        rows = s.scalars(select(WebAuthnCredential).where(WebAuthnCredential.person_id == person_id)
                         .order_by(WebAuthnCredential.created_at)).all()
        return [PasskeyView(r.id, r.name, r.loa, r.created_at, r.last_used_at, r.flagged_at) for r in rows]


def move_on_merge(s: Any, source: str, into: str) -> int:
    """Inside the merge's transaction (idp/identity/people.py): every passkey of `source` is
    `into`'s now, the same rows (a credential id is the primary key: moved, never copied),
    remembering whose user handle the authenticator holds."""
    col = WebAuthnCredential
    return s.execute(update(col).where(col.person_id == source).values(
        person_id=into, user_handle_of=func.coalesce(col.user_handle_of, source))).rowcount


def registration_level(nixa: Any, session: Any) -> int | None:
    """The level a passkey registered in `session` earns: the highest level (substantial or more)
    the session authenticated at within REGISTER_MAX_AGE; None when it did not reach substantial."""
    picked = session.satisfying(MIN_REGISTER_LOA, REGISTER_MAX_AGE, nixa.clock()) if session is not None else None
    return picked[0] if picked else None


def registration_options(nixa: Any, session: Any, browser: str) -> str:
    """The options for navigator.credentials.create() (JSON), its challenge stored for this
    session and browser. A discoverable credential, user verification required, no attestation."""
    if registration_level(nixa, session) is None:
        raise PasskeyRefused("passkey_needs_substantial")
    rp_id, _ = relying_party(nixa)
    person_id = session.person_id
    name = nixa.people.attributes(person_id).get("name")
    display = str(name.value) if name is not None else "NIXA"
    options = generate_registration_options(
        rp_id=rp_id, rp_name="NIXA", user_id=user_handle(nixa, person_id), user_name=display, user_display_name=display,
        timeout=CHALLENGE_TTL * 1000, attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED,
                                                               user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.id)) for c in credentials(nixa, person_id)],
    )
    PasskeyChallenges(nixa.store).issue_registration(session.sid, browser, options.challenge)
    return options_to_json(options)


def _refuse(nixa: Any, code: str, *, person_id: str | None, ip: str | None, **data: Any) -> PasskeyRefused:
    nixa.events.emit("passkey.refused", person_id=person_id, ip=ip, data={"reason": code, **data})
    return PasskeyRefused(code)


def _parsed(credential_json: str) -> dict:
    """The browser's PublicKeyCredential as JSON, or a refusal (never an exception of ours)."""
    if not credential_json or len(credential_json) > CREDENTIAL_JSON_MAX:
        raise PasskeyRefused("passkey_invalid")
    try:
        data = json.loads(credential_json)
    except ValueError:
        raise PasskeyRefused("passkey_invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not 0 < len(data["id"]) <= 255:
        raise PasskeyRefused("passkey_invalid")
    return data


def register(nixa: Any, session: Any, browser: str, credential_json: str, name: str, *, ip: str | None) -> PasskeyView:
    """Verify the attestation against this session's challenge (taken once) and keep the key at
    the level the session reached."""
    person_id = session.person_id
    if not credential_json:  # the form was sent without the script (or without WebAuthn)
        raise PasskeyRefused("passkey_no_script")
    challenge = PasskeyChallenges(nixa.store).take_registration(session.sid, browser)
    level = registration_level(nixa, session)
    if level is None:
        raise _refuse(nixa, "passkey_needs_substantial", person_id=person_id, ip=ip, action="register")
    if challenge is None:
        raise _refuse(nixa, "passkey_challenge_expired", person_id=person_id, ip=ip, action="register")
    try:
        data = _parsed(credential_json)
        rp_id, origin = relying_party(nixa)
        verified = verify_registration_response(credential=data, expected_challenge=challenge, expected_rp_id=rp_id,
                                                expected_origin=origin, require_user_verification=True)
    except (PasskeyRefused, WebAuthnException, ValueError, KeyError, TypeError, AttributeError):
        raise _refuse(nixa, "passkey_invalid", person_id=person_id, ip=ip, action="register") from None
    label = " ".join(name.split())[:NAME_MAX] or "Passkey"
    row = WebAuthnCredential(id=bytes_to_base64url(verified.credential_id), person_id=person_id,
                             public_key=verified.credential_public_key, sign_count=verified.sign_count, name=label,
                             transports=[t for t in (data.get("response", {}).get("transports") or []) if isinstance(t, str)][:8],
                             aaguid=verified.aaguid, backed_up=verified.credential_backed_up, loa=level, created_at=nixa.clock())
    try:
        with nixa.db.session() as s:
            s.add(row)
    except IntegrityError:
        raise _refuse(nixa, "passkey_exists", person_id=person_id, ip=ip, action="register") from None
    nixa.events.emit("passkey.registered", person_id=person_id, ip=ip, data={"credential": row.id, "loa": level, "name": label})
    notify.passkey_registered(nixa, person_id, label, ip)
    return PasskeyView(row.id, label, level, row.created_at, None, None)


def remove(nixa: Any, person_id: str, credential_id: str, *, ip: str | None) -> None:
    with nixa.db.session() as s:
        gone = s.execute(delete(WebAuthnCredential).where(WebAuthnCredential.id == credential_id[:255],
                                                          WebAuthnCredential.person_id == person_id)).rowcount
    if not gone:
        raise PasskeyRefused("passkey_not_found")
    nixa.events.emit("passkey.removed", person_id=person_id, ip=ip, data={"credential": credential_id})


# ---- signing in ------------------------------------------------------------------------------------


def sign_in_options(nixa: Any, rid: str, browser: str) -> str:
    """The options for navigator.credentials.get() (JSON): no allowCredentials (the browser
    offers the passkeys it holds for NIXA: nothing typed), user verification required."""
    rp_id, _ = relying_party(nixa)
    options = generate_authentication_options(rp_id=rp_id, timeout=CHALLENGE_TTL * 1000, allow_credentials=[],
                                              user_verification=UserVerificationRequirement.REQUIRED)
    PasskeyChallenges(nixa.store).issue_sign_in(rid, browser, options.challenge)
    return options_to_json(options)


def credential_id_of(credential_json: str) -> str | None:
    """The credential id an assertion names (the throttle's identifier), or None if malformed."""
    try:
        return _parsed(credential_json)["id"]
    except PasskeyRefused:
        return None


def verify_sign_in(nixa: Any, rid: str, browser: str, credential_json: str, *, ip: str | None) -> PasskeySignIn:
    """Check an assertion against this request's challenge (taken once) and the stored key."""
    challenge = PasskeyChallenges(nixa.store).take_sign_in(rid, browser)
    if challenge is None:
        raise _refuse(nixa, "passkey_challenge_expired", person_id=None, ip=ip, action="sign_in")
    try:
        data = _parsed(credential_json)
    except PasskeyRefused:
        raise _refuse(nixa, "passkey_invalid", person_id=None, ip=ip, action="sign_in") from None
    with nixa.db.session() as s:
        row = s.get(WebAuthnCredential, data["id"])
        stored = (row.person_id, row.public_key, row.sign_count, row.loa, row.flagged_at, row.user_handle_of) if row else None
    if stored is None:
        raise _refuse(nixa, "passkey_unknown", person_id=None, ip=ip, action="sign_in", credential=data["id"][:64])
    person_id, public_key, count, loa, flagged_at, handle_of = stored
    if flagged_at is not None:
        raise _refuse(nixa, "passkey_flagged", person_id=person_id, ip=ip, action="sign_in", credential=data["id"])
    rp_id, origin = relying_party(nixa)
    try:
        # The sign count is checked below, after the signature: an unsigned low count must not
        # be able to flag someone's passkey.
        verified = verify_authentication_response(credential=data, expected_challenge=challenge, expected_rp_id=rp_id,
                                                  expected_origin=origin, credential_public_key=public_key,
                                                  credential_current_sign_count=0, require_user_verification=True)
        handle = data.get("response", {}).get("userHandle")
        # A passkey moved here by a merge still carries the user handle it was registered with.
        if handle and base64url_to_bytes(handle) != user_handle(nixa, handle_of or person_id):
            raise ValueError("user handle of another person")
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError):
        raise _refuse(nixa, "passkey_invalid", person_id=person_id, ip=ip, action="sign_in", credential=data["id"]) from None
    _advance_count(nixa, data["id"], person_id, count, verified.new_sign_count, ip)
    nixa.events.emit("passkey.used", person_id=person_id, ip=ip, data={"credential": data["id"], "loa": loa})
    return PasskeySignIn(person_id, int(loa), data["id"])


def _advance_count(nixa: Any, credential_id: str, person_id: str, seen: int, new: int, ip: str | None) -> None:
    """WebAuthn §6.1.1: a counter that does not grow (when either value is non-zero) signals a
    cloned authenticator. The update is conditional, so two assertions with one count cannot both pass."""
    col = WebAuthnCredential
    grows = col.sign_count == 0 if new == 0 else col.sign_count < new  # an authenticator without a counter always says 0
    with nixa.db.session() as s:
        moved = s.execute(update(col).where(col.id == credential_id, col.flagged_at.is_(None), grows)
                          .values(sign_count=new, last_used_at=nixa.clock())).rowcount
        if not moved:
            s.execute(update(col).where(col.id == credential_id, col.flagged_at.is_(None)).values(flagged_at=nixa.clock()))
    if not moved:
        nixa.events.emit("passkey.cloned", person_id=person_id, ip=ip, data={"credential": credential_id, "stored_count": seen,
                                                                                "presented_count": new})
        raise PasskeyRefused("passkey_cloned")
