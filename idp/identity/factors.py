"""Second factors: an authenticator app (TOTP, RFC 6238, through pyotp) and recovery codes.

A second factor proves possession of something bound to the Person; it does not prove who the
person is. It is bound only on the account page, in a session at substantial (idp/account), so
the NIXA password (low) plus this factor reaches substantial and never more: the factor cannot
lift anyone above the sign-in that bound it.

- The TOTP secret is random (160 bits), sealed at rest with nixa.sealer under associated data
  naming the person's row, so a copied blob does not open for anyone else. It is active only
  once the person typed a first code from the app (`confirmed_at`).
- Each code is accepted once: the accepted time step is stored (`last_step`) by a conditional
  UPDATE (`last_step < step`), so a replay, in the same window or in parallel, is refused.
  One step (30 s) of clock skew either side is allowed (RFC 6238 §5.2), never more.
- Recovery codes (80 random bits each) are stored as HMAC-SHA256 under the stable secret
  `recovery-code`, bound to the person: random codes need no slow hash, and the keyed hash lets
  one conditional UPDATE (`used_at IS NULL`) spend a code exactly once. Regenerating deletes the
  old set.
- Every check goes through nixa.throttle keyed by the person (method `totp` or `recovery-code`,
  at substantial): a wrong code counts, a lock refuses even the right code until it ends.
- Every change and every recovery is audited and told to the phone on record (notify.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from sqlalchemy import delete, func, select, update

from connectors.base import LevelOfAssurance
from idp.identity import notify
from idp.store.models import RecoveryCode, TotpFactor
from keys.sealing import SealedValueRefused, Sealer, place
from sqlalchemy.orm import Session

log = logging.getLogger("nixa")

TOTP_METHOD = "totp"
RECOVERY_METHOD = "recovery-code"
LEVEL = int(LevelOfAssurance.SUBSTANTIAL)  # password (low) + a second factor
AMR = ["pwd", "otp"]  # RFC 8176: password, then a one-time code (an app's or a recovery code)
STEP = 30  # seconds: RFC 6238's default, what every authenticator app uses
SKEW_STEPS = 1
SECRET_BYTES = 20  # 160 bits: RFC 4226 §4 recommends it
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols, no 0/O or 1/I to confuse
RECOVERY_LENGTH = 16  # 16 × 5 bits = 80 bits
ISSUER_NAME = "NIXA"


class FactorRefused(Exception):
    """A change or a check refused; `code` names why (shown to the person), `wait` the seconds
    of a throttle lock."""

    def __init__(self, code: str, wait: int = 0) -> None:
        super().__init__(code)
        self.code = code
        self.wait = wait


def _aad(person_id: str) -> str:
    return place("totp_factors", person_id, "secret_sealed")


# ---- the authenticator app ---------------------------------------------------------------------


@dataclass(frozen=True)
class TotpState:
    created_at: float
    confirmed_at: float | None


def totp_state(nixa: Any, person_id: str) -> TotpState | None:
    with nixa.db.session() as s:
        row = s.get(TotpFactor, person_id)
        return TotpState(row.created_at, row.confirmed_at) if row is not None else None


def has_confirmed_totp(nixa: Any, person_id: str) -> bool:
    state = totp_state(nixa, person_id)
    return state is not None and state.confirmed_at is not None


def start_totp(nixa: Any, person_id: str) -> None:
    """A new secret waiting for its first code; it replaces an unconfirmed one. A confirmed
    factor is removed first (a sign-in within 5 minutes), never replaced silently."""
    secret = pyotp.random_base32(length=SECRET_BYTES * 8 // 5)
    sealed = nixa.sealer.seal(secret.encode(), _aad(person_id))
    with nixa.db.session() as s:
        row = s.get(TotpFactor, person_id)
        if row is not None and row.confirmed_at is not None:
            raise FactorRefused("totp_exists")
        if row is None:
            s.add(TotpFactor(person_id=person_id, secret_sealed=sealed, created_at=nixa.clock(), last_step=0))
        else:
            row.secret_sealed, row.created_at, row.last_step = sealed, nixa.clock(), 0


def seed_demo_totp(nixa: Any, person_id: str, secret: str) -> None:
    """The demo's sandbox persona only (idp/demo/personas.py): an authenticator app whose secret
    is published in docs/personas.md, confirmed at once. Leaves an existing factor alone. No
    route reaches it: a citizen's own app is only ever bound on the account page."""
    sealed = nixa.sealer.seal(secret.encode(), _aad(person_id))
    with nixa.db.session() as s:
        if s.get(TotpFactor, person_id) is None:
            s.add(TotpFactor(person_id=person_id, secret_sealed=sealed, created_at=nixa.clock(), confirmed_at=nixa.clock(), last_step=0))


def enrolment_secret(nixa: Any, person_id: str) -> str | None:
    """The secret of an enrolment not yet confirmed (shown again until the first code); never
    the secret of an active factor."""
    with nixa.db.session() as s:
        row = s.get(TotpFactor, person_id)
        if row is None or row.confirmed_at is not None:
            return None
        return _opened(nixa, row, person_id)


def _opened(nixa: Any, row: TotpFactor, person_id: str) -> str | None:
    """The app's secret, or None when its sealed value does not open: altered in the database,
    moved from another person's row, or sealed under a master key this worker does not hold. No
    code is then accepted (the person is told to use a recovery code or ask support) and the
    operator hears of it; never a 500."""
    try:
        return nixa.sealer.open(row.secret_sealed, _aad(person_id)).decode()
    except SealedValueRefused:
        log.error("the authenticator-app secret of person %s does not open (altered, moved, or another master key)", person_id)
        return None


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=account, issuer_name=ISSUER_NAME)


def qr_svg(uri: str, title: str) -> str:
    """The QR code as inline SVG (no image request, nothing to cache), with a title for screen
    readers."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, title=title, svgclass="qr")


def _step_of(secret: str, code: str, now: float) -> int | None:
    """The time step within the skew whose code this is, or None."""
    totp = pyotp.TOTP(secret, interval=STEP)
    current = int(now // STEP)
    matched = None
    for step in range(current - SKEW_STEPS, current + SKEW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step  # no early exit: the same work whichever step matches
    return matched


def _normalise_totp(code: str) -> str:
    return "".join(code.split())[:12]


def _accept_totp(nixa: Any, person_id: str, code: str, *, enrolling: bool) -> str | None:
    """None when the code is accepted (its step is now spent), else why not."""
    with nixa.db.session() as s:
        row = s.get(TotpFactor, person_id)
        if row is None or (row.confirmed_at is None) != enrolling:
            return "no_factor"
        secret = _opened(nixa, row, person_id)
    if secret is None:
        return "factor_unreadable"
    step = _step_of(secret, _normalise_totp(code), nixa.clock())
    if step is None:
        return "wrong_code"
    values: dict[str, Any] = {"last_step": step}
    if enrolling:
        values["confirmed_at"] = nixa.clock()
    with nixa.db.session() as s:
        spent = s.execute(update(TotpFactor).where(TotpFactor.person_id == person_id, TotpFactor.last_step < step)
                          .values(**values)).rowcount
    return None if spent == 1 else "replayed"


def confirm_totp(nixa: Any, person_id: str, code: str, *, ip: str | None, browser: str | None) -> None:
    """The first code from the app: the factor becomes active."""
    _checked(nixa, person_id, TOTP_METHOD, lambda: _accept_totp(nixa, person_id, code, enrolling=True), ip=ip,
             request_id=None, browser=browser)
    nixa.events.emit("totp.enrolled", person_id=person_id, ip=ip)
    _tell(nixa, person_id, "totp.enrolled", ip)


def remove_totp(nixa: Any, person_id: str, *, ip: str | None) -> None:
    with nixa.db.session() as s:
        removed = s.execute(delete(TotpFactor).where(TotpFactor.person_id == person_id)).rowcount
    if not removed:
        raise FactorRefused("no_factor")
    nixa.events.emit("totp.removed", person_id=person_id, ip=ip)
    _tell(nixa, person_id, "totp.removed", ip)


# ---- recovery codes ----------------------------------------------------------------------------


def _normalise_recovery(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())[:64]


def _recovery_hash(nixa: Any, person_id: str, code: str) -> str:
    message = f"{person_id}\x00{_normalise_recovery(code)}".encode()
    return hmac.new(nixa.stable["recovery-code"], message, hashlib.sha256).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, RECOVERY_LENGTH, 4))


def generate_recovery_codes(nixa: Any, person_id: str, *, ip: str | None) -> list[str]:
    """A new set of codes, shown once; the old set stops working in the same transaction."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    now = nixa.clock()
    with nixa.db.session() as s:
        s.execute(delete(RecoveryCode).where(RecoveryCode.person_id == person_id))
        s.add_all(RecoveryCode(person_id=person_id, code_hash=_recovery_hash(nixa, person_id, c), created_at=now) for c in codes)
    nixa.events.emit("recovery.codes_generated", person_id=person_id, ip=ip, data={"count": len(codes)})
    _tell(nixa, person_id, "recovery.codes_generated", ip)
    return codes


def recovery_codes_left(nixa: Any, person_id: str) -> int:
    with nixa.db.session() as s:
        return int(s.scalar(select(func.count(RecoveryCode.id))
                            .where(RecoveryCode.person_id == person_id, RecoveryCode.used_at.is_(None))) or 0)


def _spend_recovery_code(nixa: Any, person_id: str, code: str) -> str | None:
    with nixa.db.session() as s:
        # Codes that came with a merge keep the hash made for the person they were given to.
        bound = s.scalars(select(RecoveryCode.bound_to).where(RecoveryCode.person_id == person_id, RecoveryCode.bound_to.is_not(None),
                                                              RecoveryCode.used_at.is_(None)).distinct()).all()
        hashes = [_recovery_hash(nixa, binding, code) for binding in {person_id, *bound}]
        spent = s.execute(update(RecoveryCode)
                          .where(RecoveryCode.person_id == person_id, RecoveryCode.code_hash.in_(hashes), RecoveryCode.used_at.is_(None))
                          .values(used_at=nixa.clock())).rowcount
    return None if spent == 1 else "wrong_code"


# ---- a merge of two persons ----------------------------------------------------------------------


class FactorConflict(ValueError):
    """Both persons of a merge have an active authenticator app: a person has one, so one of
    them is removed first (by the person, on the account page) rather than either lost silently."""


def merge_conflict(s: Session, source: str, into: str) -> bool:
    src, dst = s.get(TotpFactor, source), s.get(TotpFactor, into)
    return bool(src and src.confirmed_at is not None and dst and dst.confirmed_at is not None)


def move_on_merge(s: Session, sealer: Sealer, source: str, into: str) -> dict[str, Any]:
    """Inside the merge's transaction (idp/identity/people.py): the source's authenticator app
    moves to `into`, sealed again (its associated data names the row's person) with its last
    accepted step, so no code is accepted twice; its recovery codes move still bound to the
    person they were made for (their keyed hash names that person). An enrolment never
    confirmed is not a factor: it is dropped. The caller has refused a merge_conflict first."""
    moved: dict[str, Any] = {"authenticator_app": False}
    src, dst = s.get(TotpFactor, source), s.get(TotpFactor, into)
    if src is not None:
        if src.confirmed_at is not None:
            secret = sealer.open(src.secret_sealed, _aad(source))
            if dst is not None:  # the target's unconfirmed enrolment gives way to a working app
                s.delete(dst)
            s.delete(src)
            s.flush()
            s.add(TotpFactor(person_id=into, secret_sealed=sealer.seal(secret, _aad(into)), created_at=src.created_at,
                             confirmed_at=src.confirmed_at, last_step=src.last_step))
            moved["authenticator_app"] = True
        else:
            s.delete(src)
    moved["recovery_codes"] = s.execute(update(RecoveryCode).where(RecoveryCode.person_id == source).values(
        person_id=into, bound_to=func.coalesce(RecoveryCode.bound_to, source))).rowcount
    return moved


# ---- the second step of a sign-in, and the reset after a re-proof --------------------------------


def second_factors(nixa: Any, person_id: str) -> list[str]:
    """The second-factor methods this person can use after the password: none without a
    confirmed authenticator app; recovery codes are its stand-in, not a factor of their own."""
    if not has_confirmed_totp(nixa, person_id):
        return []
    return [TOTP_METHOD] + ([RECOVERY_METHOD] if recovery_codes_left(nixa, person_id) else [])


def verify_second_factor(nixa: Any, person_id: str, method: str, code: str, *, ip: str | None, request_id: str,
                         browser: str | None) -> None:
    """Check a sign-in's second step (a code from the app, or a recovery code); raises
    FactorRefused. A recovery code used is audited and told to the person."""
    if method == TOTP_METHOD:
        _checked(nixa, person_id, method, lambda: _accept_totp(nixa, person_id, code, enrolling=False), ip=ip,
                 request_id=request_id, browser=browser)
        nixa.events.emit("totp.used", person_id=person_id, ip=ip)
        return
    _checked(nixa, person_id, method, lambda: _spend_recovery_code(nixa, person_id, code), ip=ip, request_id=request_id,
             browser=browser)
    left = recovery_codes_left(nixa, person_id)
    nixa.events.emit("recovery.code_used", person_id=person_id, ip=ip, data={"left": left})
    _tell(nixa, person_id, "recovery.code_used", ip)


def reset(nixa: Any, person_id: str, *, ip: str | None) -> None:
    """Every factor lost: after a fresh re-proof (the account page's sign-in within 5 minutes),
    remove the authenticator app and every recovery code, so the person enrols again."""
    with nixa.db.session() as s:
        apps = s.execute(delete(TotpFactor).where(TotpFactor.person_id == person_id)).rowcount
        codes = s.execute(delete(RecoveryCode).where(RecoveryCode.person_id == person_id)).rowcount
    if not apps and not codes:
        raise FactorRefused("no_factor")
    nixa.events.emit("recovery.reset", person_id=person_id, ip=ip, data={"totp_removed": bool(apps), "codes_removed": codes})
    _tell(nixa, person_id, "recovery.reset", ip)


def _checked(nixa: Any, person_id: str, method: str, check: Callable[[], str | None], *, ip: str | None, request_id: str | None,
             browser: str | None) -> None:
    """The one path of every code check: counted by the throttle before it is checked (parallel
    guesses cannot pass the limit), refused without checking while locked."""
    guard = {"method": method, "level": LEVEL, "identifier": person_id, "ip": ip, "request_id": request_id, "browser": browser}
    refused = "totp.refused" if method == TOTP_METHOD else "recovery.code_refused"
    wait = nixa.throttle.secret_attempt(**guard)
    if wait:
        nixa.events.emit(refused, person_id=person_id, ip=ip, data={"reason": "throttled", "wait": wait})
        raise FactorRefused("throttled", wait)
    reason = check()
    if reason is not None:
        nixa.events.emit(refused, person_id=person_id, ip=ip, data={"reason": reason})
        raise FactorRefused(reason)
    nixa.throttle.secret_succeeded(**guard)


# What the SMS says (unaccented Vietnamese / English, notify.unaccented's GSM-7 rule).
NOTICES = {
    "totp.enrolled": ("Ung dung xac thuc vua duoc them vao tai khoan cua ban", "An authenticator app was added to your ID"),
    "totp.removed": ("Ung dung xac thuc vua bi go khoi tai khoan cua ban", "The authenticator app was removed from your ID"),
    "recovery.codes_generated": ("Bo ma khoi phuc moi vua duoc tao, bo cu het hieu luc",
                                 "New recovery codes were made; the old ones are void"),
    "recovery.code_used": ("Mot ma khoi phuc vua duoc dung de dang nhap", "A recovery code was used to sign in"),
    "recovery.reset": ("Ung dung xac thuc va ma khoi phuc cua ban vua duoc dat lai",
                       "Your authenticator app and recovery codes were reset"),
}


def _tell(nixa: Any, person_id: str, kind: str, ip: str | None) -> None:
    """The person hears of every change to their factors: one they did not make is an attack."""
    vi, en = NOTICES[kind]
    at = notify.when(nixa)
    notify.notify(nixa, person_id, kind, f"NIXA: {vi} luc {at}. Neu khong phai ban, hay bao ngay. / {en} at {at}. Not you? Act now.",
                  ip=ip)


def reseal(s: Any, sealer: Sealer) -> int:
    """Master-key rotation (keys/sealing.py Sealer.rotate): re-seal every TOTP secret."""
    rows = s.scalars(select(TotpFactor)).all()
    for row in rows:
        row.secret_sealed = sealer.reseal(row.secret_sealed, _aad(row.person_id))
    return len(rows)
