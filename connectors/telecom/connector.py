"""SMS one-time codes through a mobile operator's SMS API (challenge-style connector).

The OTP logic lives here once: the population registry connector sends its second factor to
the phone on record through `send_otp` / `check_otp` of this connector (reached with
`ctx.registry.get("telecom")`), so throttling, hashing and attempt limits are the same
whichever sign-in uses a code.

Every message sent (codes and notices) is counted first by the throttle service
(`ctx.throttle.send_attempt`: per number, per client address, per pending request, globally),
so neither a flood of numbers from one address nor Unicode variants of one number get past it.

Ephemeral store layout (prefix `otp:<connector id>:`):
    c:<sha256(challenge id)>            {mac, msisdn, purpose, binding}     ttl = otp_ttl
    c:<sha256(challenge id)>:attempts   answers tried (counter)              ttl = otp_ttl
    resend:<msisdn>                     add-if-absent resend cooldown        ttl = resend_after
    latest:<purpose>:<h(group)>:<msisdn>
                                        key of the newest challenge of that group (the pending
                                        request): a resend supersedes that group's previous
                                        code only, so a challenge someone else starts for the
                                        same number never cancels this one
    hour:<channel>:<msisdn>             only without a throttle service (a connector opened
                                        outside the app): messages this hour   ttl = 3600

Only a MAC of the code is stored, keyed by the challenge id, and the record itself sits under a
hash of that id: the challenge id travels in the login flow's state, never next to the MAC, so a
dump of the OTP records alone does not give the 10^6 codes away to an offline search.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from connectors.base import (
    Assertion,
    Challenge,
    ChallengeExpired,
    ConnectorContext,
    FormField,
    Health,
    InvalidCredentials,
    LevelOfAssurance,
    RateLimited,
    UpstreamUnavailable,
    VerifiedAttribute,
    config_value,
)
from connectors.resilience import CircuitBreaker, ResilientHttp
from connectors.telecom.phone import InvalidPhoneNumber, mask_msisdn, normalize_msisdn

OTP_DIGITS = 6
MAX_OTP_TTL = 300


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class TelecomSmsConfig:
    """Connector configuration (the `config` mapping from the database), with defaults."""

    base_url: str = field(metadata=_doc("Operator SMS API base URL, e.g. http://127.0.0.1:9102."))
    api_key: str = field(metadata=_doc("Bearer API key for the operator SMS API."))
    sender: str = field(default="NIXA", metadata=_doc("Alphanumeric sender ID shown on the phone (≤ 11 characters)."))
    otp_ttl: int = field(default=300, metadata=_doc("Seconds a code stays valid; capped at 300."))
    resend_after: int = field(default=30, metadata=_doc("Seconds before another code may be sent to the same number."))
    timeout: float = field(default=3.0, metadata=_doc("Seconds to wait for the operator API."))
    loa: LevelOfAssurance = field(default=LevelOfAssurance.LOW, metadata=_doc("Level of assurance of an SMS-only sign-in."))
    max_attempts: int = field(default=5, metadata=_doc("Answers allowed per code; the last wrong one ends the challenge."))
    sends_per_hour: int = field(default=10, metadata=_doc("Codes sent to one number per hour at most (SMS pumping)."))
    breaker_threshold: int = field(default=5, metadata=_doc("Consecutive operator failures that open the circuit."))
    breaker_reset_after: float = field(default=30.0, metadata=_doc("Seconds the circuit stays open before a trial call."))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> TelecomSmsConfig:
        d = cls(base_url="", api_key="")

        def pick(key: str, default: Any) -> Any:
            return config_value(config, key, default)

        return cls(
            base_url=str(pick("base_url", "")),
            api_key=str(pick("api_key", "")),
            sender=str(pick("sender", d.sender)),
            otp_ttl=min(MAX_OTP_TTL, max(1, int(pick("otp_ttl", d.otp_ttl)))),
            resend_after=max(0, int(pick("resend_after", d.resend_after))),
            timeout=float(pick("timeout", d.timeout)),
            loa=LevelOfAssurance.parse(pick("loa", d.loa)),
            max_attempts=max(1, int(pick("max_attempts", d.max_attempts))),
            sends_per_hour=max(1, int(pick("sends_per_hour", d.sends_per_hour))),
            breaker_threshold=max(1, int(pick("breaker_threshold", d.breaker_threshold))),
            breaker_reset_after=float(pick("breaker_reset_after", d.breaker_reset_after)),
        )


@dataclass(frozen=True)
class VerifiedOtp:
    """A code answered correctly: the number it went to and what it was bound to."""

    msisdn: str
    purpose: str
    binding: str


def _otp_mac(challenge_id: str, purpose: str, binding: str, code: str) -> str:
    message = "\x00".join((purpose, binding, code)).encode()
    return hmac.new(challenge_id.encode(), message, hashlib.sha256).hexdigest()


class TelecomSmsConnector:
    """Sign-in with a one-time code sent by SMS to a Vietnamese mobile number."""

    config_class = TelecomSmsConfig
    secret_keys = ("api_key",)
    display_name_vi = "Mã xác thực qua tin nhắn SMS"
    display_name_en = "One-time code by SMS"
    challenge_fields = (
        FormField(
            "phone", "Số điện thoại di động", "Mobile phone number", kind="tel", autocomplete="tel", pattern=r"[+0-9 .\-]{9,16}"
        ),
    )

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.id = ctx.connector_id
        self.config = TelecomSmsConfig.from_mapping(ctx.config)
        self._prefix = f"otp:{self.id}:"
        self._http = ResilientHttp(
            self.config.base_url,
            timeout=self.config.timeout,
            retries=0,  # sending an SMS is not idempotent: never retried (no duplicate codes)
            breaker=CircuitBreaker(self.config.breaker_threshold, self.config.breaker_reset_after),
            name=f"{self.id} SMS API",
            headers={"Authorization": f"Bearer {self.config.api_key}"},
        )

    # ---- challenge-style capability ---------------------------------------------------------

    def start(self, form: Mapping[str, str], *, request_id: str = "", ip: str | None = None) -> Challenge:
        msisdn = self._normalize(form.get("phone", ""))
        return self.send_otp(msisdn, purpose=self.id, binding=msisdn, group=request_id, ip=ip, request_id=request_id or None)

    def verify(self, challenge_state: Mapping[str, Any], answer: str) -> Assertion:
        verified = self.check_otp(challenge_state, answer, purpose=self.id)
        now = self.ctx.clock()
        attributes = {
            "phone_number": VerifiedAttribute("phone_number", verified.msisdn, self.id, now),
            "phone_number_verified": VerifiedAttribute("phone_number_verified", True, self.id, now),
        }
        return Assertion(
            connector_id=self.id,
            subject=verified.msisdn,
            attributes=attributes,
            loa=self.config.loa,
            amr=("sms", "otp"),  # RFC 8176 §2
            authenticated_at=now,
        )

    # ---- the reusable OTP service -----------------------------------------------------------

    def send_otp(
        self,
        phone: str,
        purpose: str,
        binding: str,
        *,
        group: str = "",
        ip: str | None = None,
        request_id: str | None = None,
    ) -> Challenge:
        """Send a fresh code to `phone`; `purpose` (the asking connector's id) and `binding`
        (what the code vouches for, e.g. a PIN) are checked again by `check_otp`. A new code
        supersedes only the previous code of the same `group` (pass the pending request id);
        `ip` and `request_id` are what the send is counted against besides the number."""
        msisdn = self._normalize(phone)
        store, cfg = self.ctx.store, self.config
        resend_key = f"{self._prefix}resend:{msisdn}"
        if cfg.resend_after and not store.add(resend_key, 1, cfg.resend_after):
            raise RateLimited("a code was sent moments ago", retry_after=self._seconds_left(resend_key, cfg.resend_after))
        self._count_send(self.id, msisdn, ip=ip, request_id=request_id)

        challenge_id = secrets.token_urlsafe(24)
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        record_key = self._record_key(challenge_id)
        record = {"mac": _otp_mac(challenge_id, purpose, binding, code), "msisdn": msisdn, "purpose": purpose, "binding": binding}
        store.put(record_key, record, cfg.otp_ttl)
        try:
            self._send_sms(msisdn, self._message(code))
        except Exception:
            # Nothing was delivered: forget the code and let the person try again at once.
            store.delete(record_key)
            store.delete(resend_key)
            raise
        self._supersede(purpose, group, msisdn, record_key)
        return Challenge(
            masked_destination=mask_msisdn(msisdn),
            ttl=cfg.otp_ttl,
            resend_after=cfg.resend_after,
            state={"challenge_id": challenge_id, "purpose": purpose},
        )

    def check_otp(self, challenge_state: Mapping[str, Any], answer: str, *, purpose: str | None = None) -> VerifiedOtp:
        """Check an answer: single use, constant-time, at most `max_attempts` answers per code."""
        challenge_id = challenge_state.get("challenge_id")
        if not isinstance(challenge_id, str) or (purpose is not None and challenge_state.get("purpose") != purpose):
            raise ChallengeExpired("no such challenge")
        store, cfg = self.ctx.store, self.config
        record_key = self._record_key(challenge_id)
        attempts_key = record_key + ":attempts"
        record = store.get(record_key)
        if record is None:
            raise ChallengeExpired("the code has expired or was already used")
        # Count before comparing, so concurrent guesses cannot exceed the limit either.
        attempt = store.incr(attempts_key, cfg.otp_ttl)
        if attempt > cfg.max_attempts:
            store.delete(record_key)
            raise ChallengeExpired("too many attempts")
        candidate = "".join((answer or "").split())
        expected = _otp_mac(challenge_id, record["purpose"], record["binding"], candidate)
        if hmac.compare_digest(expected, record["mac"]):
            taken = store.take(record_key)  # single use: of two concurrent right answers one wins
            if taken is None:
                raise ChallengeExpired("the code was already used")
            store.delete(attempts_key)
            return VerifiedOtp(msisdn=taken["msisdn"], purpose=taken["purpose"], binding=taken["binding"])
        if attempt >= cfg.max_attempts:
            store.delete(record_key)
            store.delete(attempts_key)
            raise InvalidCredentials("wrong code; no attempts left", code="too_many_attempts")
        raise InvalidCredentials("wrong code")

    def send_notice(self, phone: str, text: str, *, ip: str | None = None) -> None:
        """Send an informational SMS (no code), e.g. "a new sign-in method was linked to your
        identity". Counted like every message (channel `<id>:notice`, so notices do not use up
        the number's codes); RateLimited or UpstreamUnavailable when it cannot go out."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a notice needs a text")
        msisdn = self._normalize(phone)
        self._count_send(f"{self.id}:notice", msisdn, ip=ip, request_id=None)
        self._send_sms(msisdn, text)

    # ---- health and lifecycle ---------------------------------------------------------------

    def health(self) -> Health:
        started = time.perf_counter()
        try:
            response = self._http.get("/health")
        except UpstreamUnavailable as exc:
            return Health(False, str(exc))
        latency = (time.perf_counter() - started) * 1000
        return Health(response.status_code == 200, f"HTTP {response.status_code}", latency)

    def close(self) -> None:
        self._http.close()

    def circuit_open(self) -> bool:
        return self._http.circuit_open()

    # ---- internals --------------------------------------------------------------------------

    @staticmethod
    def _normalize(phone: str) -> str:
        try:
            return normalize_msisdn(phone)
        except InvalidPhoneNumber:
            raise InvalidCredentials("not a Vietnamese mobile number", code="invalid_phone") from None

    def _record_key(self, challenge_id: str) -> str:
        return f"{self._prefix}c:{hashlib.sha256(challenge_id.encode()).hexdigest()}"

    def _seconds_left(self, key: str, default: float) -> int:
        left = self.ctx.store.ttl(key)
        return max(1, math.ceil(default if left is None else left))

    def _count_send(self, channel: str, msisdn: str, *, ip: str | None, request_id: str | None) -> None:
        """Count one message before it goes out; RateLimited when a limit says no."""
        cfg = self.config
        throttle = self.ctx.throttle
        if throttle is not None:
            wait = throttle.send_attempt(channel=channel, destination=msisdn, ip=ip, request_id=request_id,
                                         per_destination=cfg.sends_per_hour)
            if wait > 0:
                raise RateLimited("too many messages; try again later", retry_after=int(wait))
            return
        # Opened without the app's throttle service (a tool, a probe): still cap per number.
        hour_key = f"{self._prefix}hour:{channel}:{msisdn}"
        if self.ctx.store.incr(hour_key, 3600) > cfg.sends_per_hour:
            raise RateLimited("too many messages sent to this number", retry_after=self._seconds_left(hour_key, 3600))

    def _supersede(self, purpose: str, group: str, msisdn: str, record_key: str) -> None:
        # Only the same group's (pending request's) previous code: one started by somebody else
        # for this number must not cancel the code its owner is about to type.
        group_hash = hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        latest_key = f"{self._prefix}latest:{purpose}:{group_hash}:{msisdn}"
        previous = self.ctx.store.take(latest_key)
        self.ctx.store.put(latest_key, record_key, self.config.otp_ttl)
        if previous and previous != record_key:
            self.ctx.store.delete(previous)
            self.ctx.store.delete(previous + ":attempts")

    def _message(self, code: str) -> str:
        minutes = max(1, self.config.otp_ttl // 60)
        # Unaccented Vietnamese keeps the SMS in GSM-7 (160 characters a segment).
        text = (
            f"{self.config.sender}: Ma xac thuc cua ban la {code}, hieu luc {minutes} phut. KHONG chia se ma nay. "
            f"/ Your code is {code}, valid {minutes} min. Do not share it."
        )
        issuer = urlparse(self.ctx.issuer or "")
        if issuer.scheme == "https" and issuer.hostname:
            # Origin-bound one-time code line (WebOTP): browsers fill it in only on this origin.
            text += f"\n\n@{issuer.hostname} #{code}"
        return text

    def _send_sms(self, msisdn: str, text: str) -> None:
        response = self._http.post("/v1/sms", json={"to": msisdn, "text": text, "sender": self.config.sender})
        if response.status_code in (200, 201, 202):
            return
        if response.status_code == 400:
            raise InvalidCredentials("the operator refused this number", code="invalid_phone")
        raise UpstreamUnavailable(f"{self.id} SMS API answered HTTP {response.status_code}")
