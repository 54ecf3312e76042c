"""The national population registry: identification of a record, an SMS code to the phone on
record as the factor that authenticates, verified attributes for other sources, and refresh.

Knowing is not proving: the PIN, full name and date of birth are printed on every photocopy of
the card (and the PIN encodes the birth year), so checking them only *identifies* the record
whose bound factor is then challenged. There is no details-only sign-in.

Authentication method, as `amr` values (RFC 8176 §2):
- identification + code sent to the phone on record (`start`/`verify`):
  ("kba", "sms", "otp", "mfa") → SUBSTANTIAL (config `challenge_loa`). "kba" appears only beside
  the real factor, possession of the phone the registry holds for that ID.
- `refresh` assertions carry no amr: nobody authenticated; the caller keeps the original time.

Errors: unknown PIN and mismatch are the same InvalidCredentials (the page must not reveal
whether a PIN exists); deceased → NotAllowed(code="deceased"); locked →
NotAllowed(code="id_locked"); outage, timeout, open circuit → UpstreamUnavailable.
Throttling of repeated identification attempts per ID is the login flow's (the throttle
service, keyed on the canonical PIN); the number of OTP answers is limited by the telecom
connector, and every SMS goes through the throttle service's send limits.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import (
    Assertion,
    Challenge,
    ChallengeExpired,
    ConnectorContext,
    FormField,
    Gone,
    Health,
    InvalidCredentials,
    LevelOfAssurance,
    NotAllowed,
    UpstreamUnavailable,
    VerifiedAttribute,
    config_value,
)
from connectors.population.cccd import InvalidPin, normalize_pin
from connectors.population.citizen import Citizen
from connectors.resilience import CircuitBreaker, ResilientHttp
from connectors.telecom.phone import InvalidPhoneNumber, normalize_msisdn

SOURCE = "population"
AMR_KNOWLEDGE_AND_SMS = ("kba", "sms", "otp", "mfa")
REFUSALS = {"deceased": "deceased", "locked": "id_locked"}  # registry status → NotAllowed/Gone code


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class PopulationRegistryConfig:
    """Connector configuration (the `config` mapping from the database), with defaults."""

    base_url: str = field(metadata=_doc("Registry API base URL, e.g. http://127.0.0.1:9101."))
    api_key: str = field(metadata=_doc("Bearer API key for the registry API."))
    timeout: float = field(default=3.0, metadata=_doc("Seconds to wait for the registry."))
    retries: int = field(default=1, metadata=_doc("Extra attempts for lookups and knowledge checks (read-only calls)."))
    otp_connector: str = field(default="telecom", metadata=_doc("Id of the SMS OTP connector that sends the second factor."))
    loa: LevelOfAssurance = field(default=LevelOfAssurance.LOW, metadata=_doc("Level of the connector entry (the registry makes no session by itself; the challenge has challenge_loa)."))
    challenge_loa: LevelOfAssurance = field(
        default=LevelOfAssurance.SUBSTANTIAL, metadata=_doc("Level of knowledge check + SMS code to the phone on record.")
    )
    breaker_threshold: int = field(default=5, metadata=_doc("Consecutive registry failures that open the circuit."))
    breaker_reset_after: float = field(default=30.0, metadata=_doc("Seconds the circuit stays open before a trial call."))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> PopulationRegistryConfig:
        d = cls(base_url="", api_key="")

        def pick(key: str, default: Any) -> Any:
            return config_value(config, key, default)

        return cls(
            base_url=str(pick("base_url", "")),
            api_key=str(pick("api_key", "")),
            timeout=float(pick("timeout", d.timeout)),
            retries=max(0, int(pick("retries", d.retries))),
            otp_connector=str(pick("otp_connector", d.otp_connector)),
            loa=LevelOfAssurance.parse(pick("loa", d.loa)),
            challenge_loa=LevelOfAssurance.parse(pick("challenge_loa", d.challenge_loa)),
            breaker_threshold=max(1, int(pick("breaker_threshold", d.breaker_threshold))),
            breaker_reset_after=float(pick("breaker_reset_after", d.breaker_reset_after)),
        )


_KNOWLEDGE_FIELDS = (
    FormField("pin", "Số định danh cá nhân (số CCCD)", "Personal identification number (CCCD)", pattern=r"[0-9 ]{12,15}"),
    FormField("full_name", "Họ và tên (có dấu)", "Full name (with diacritics)", autocomplete="name"),
    FormField("date_of_birth", "Ngày sinh", "Date of birth", kind="date", autocomplete="bday"),
)


def parse_birth_date(raw: str) -> str:
    """ISO `1990-01-15` (what a date input sends) or Vietnamese `15/01/1990` → `1990-01-15`."""
    raw = (raw or "").strip()
    try:
        if "/" in raw:
            return dt.datetime.strptime(raw, "%d/%m/%Y").date().isoformat()
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        raise InvalidCredentials("not a date", code="invalid_credentials") from None


def registry_attributes(citizen: Citizen, verified_at: float) -> dict[str, VerifiedAttribute]:
    """The registry's record as OpenID Connect claims (Core §5.1) plus `national_id`."""
    values: dict[str, Any] = {
        "national_id": citizen.pin,
        "name": citizen.full_name,
        "family_name": citizen.family_name,
        "middle_name": citizen.middle_name or None,
        "given_name": citizen.given_name,
        "birthdate": citizen.date_of_birth,
        "gender": citizen.sex,
        "address": {"formatted": citizen.residence, "region": citizen.residence_province, "country": "VN"},
    }
    if citizen.phone:
        try:
            values["phone_number"] = normalize_msisdn(citizen.phone)
        except InvalidPhoneNumber:
            pass  # a landline or a malformed entry is no use as a claim
    return {name: VerifiedAttribute(name, value, SOURCE, verified_at) for name, value in values.items() if value is not None}


class PopulationRegistryConnector:
    """Challenge-style (identification + SMS code to the phone on record), attribute source,
    refresh. Deliberately not password-style: the details are public, not a secret."""

    config_class = PopulationRegistryConfig
    secret_keys = ("api_key",)
    display_name_vi = "Cơ sở dữ liệu quốc gia về dân cư"
    display_name_en = "National population registry"
    challenge_fields = _KNOWLEDGE_FIELDS

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.id = ctx.connector_id
        self.config = PopulationRegistryConfig.from_mapping(ctx.config)
        self._http = ResilientHttp(
            self.config.base_url,
            timeout=self.config.timeout,
            retries=self.config.retries,
            breaker=CircuitBreaker(self.config.breaker_threshold, self.config.breaker_reset_after),
            name=f"{self.id} registry",
            headers={"Authorization": f"Bearer {self.config.api_key}"},
        )

    # ---- identification: finds the record, authenticates nobody --------------------------------

    def find(self, form: Mapping[str, str]) -> Citizen:
        """The record the details identify (active), or InvalidCredentials / NotAllowed."""
        return self._knowledge_check(form)

    # ---- challenge-style: identification + SMS OTP to the phone on record → SUBSTANTIAL -------

    def start(self, form: Mapping[str, str], *, request_id: str = "", ip: str | None = None) -> Challenge:
        citizen = self.find(form)
        if not citizen.phone:
            raise NotAllowed("no mobile number on record", code="no_phone_on_record")
        try:
            sent = self._otp_service().send_otp(citizen.phone, purpose=self.id, binding=citizen.pin, group=request_id, ip=ip,
                                                request_id=request_id or None)
        except InvalidCredentials as exc:
            if exc.code == "invalid_phone":
                raise NotAllowed("the number on record is not a mobile number", code="no_phone_on_record") from None
            raise
        return Challenge(sent.masked_destination, sent.ttl, sent.resend_after, state={**sent.state, "pin": citizen.pin})

    def verify(self, challenge_state: Mapping[str, Any], answer: str) -> Assertion:
        verified = self._otp_service().check_otp(challenge_state, answer, purpose=self.id)
        if verified.binding != challenge_state.get("pin"):
            raise ChallengeExpired("the code was not sent for this person")
        citizen = self._fetch(verified.binding)
        if citizen is None:
            raise InvalidCredentials("unknown to the registry")
        self._refuse_unless_active(citizen.status)
        now = self.ctx.clock()
        extra = {
            "phone_number": VerifiedAttribute("phone_number", verified.msisdn, SOURCE, now),
            "phone_number_verified": VerifiedAttribute("phone_number_verified", True, SOURCE, now),
        }
        return self._assertion(citizen, self.config.challenge_loa, AMR_KNOWLEDGE_AND_SMS, extra)

    # ---- attribute source and refresh -------------------------------------------------------

    def enrich(self, assertion: Assertion) -> Mapping[str, VerifiedAttribute]:
        """The registry's attributes for a person another source proved the national ID of."""
        try:
            pin = normalize_pin(assertion.national_id or "")
        except InvalidPin:
            return {}
        citizen = self._fetch(pin)
        if citizen is None:
            return {}
        # A deceased or locked identity must not come back in through another method.
        self._refuse_unless_active(citizen.status)
        return registry_attributes(citizen, self.ctx.clock())

    def refresh(self, subject: str, connector_data: Mapping[str, Any]) -> Assertion | Gone:
        try:
            citizen = self._fetch(normalize_pin(subject))
        except InvalidPin:
            return Gone("unknown")
        if citizen is None:
            return Gone("unknown")
        if citizen.status != "active":
            return Gone(REFUSALS.get(citizen.status, citizen.status))
        return self._assertion(citizen, LevelOfAssurance.LOW, ())

    # ---- health and lifecycle ---------------------------------------------------------------

    def health(self) -> Health:
        started = time.perf_counter()
        try:
            response = self._http.get("/health")
        except UpstreamUnavailable as exc:
            return Health(False, str(exc))
        latency = (time.perf_counter() - started) * 1000
        return Health(response.status_code == 200, f"HTTP {response.status_code}", latency)

    def circuit_open(self) -> bool:
        """The registry, or the SMS connector its challenge sends the code through, is failing."""
        if self._http.circuit_open():
            return True
        try:
            otp = self._otp_service()
        except UpstreamUnavailable:
            return True
        return bool(getattr(otp, "circuit_open", lambda: False)())

    def close(self) -> None:
        self._http.close()

    # ---- internals --------------------------------------------------------------------------

    def _knowledge_check(self, form: Mapping[str, str]) -> Citizen:
        try:
            pin = normalize_pin(form.get("pin", ""))
        except InvalidPin:
            raise InvalidCredentials("not a personal identification number") from None
        full_name = " ".join((form.get("full_name") or "").split())
        if not full_name:
            raise InvalidCredentials("no name given")
        born = parse_birth_date(form.get("date_of_birth", ""))
        # The check only reads: retrying it is safe, so it gets the same retries as a lookup.
        response = self._http.post("/v1/verify", json={"pin": pin, "full_name": full_name, "date_of_birth": born}, retry=True)
        body = self._json(response)
        if not body.get("match"):
            raise InvalidCredentials("no match")  # unknown PIN and wrong name/date look the same
        self._refuse_unless_active(body.get("status"))
        citizen = self._fetch(pin)
        if citizen is None:
            raise InvalidCredentials("no match")
        self._refuse_unless_active(citizen.status)
        return citizen

    def _fetch(self, pin: str) -> Citizen | None:
        response = self._http.get(f"/v1/citizens/{pin}")
        if response.status_code == 404:
            return None
        body = self._json(response)
        try:
            return Citizen(
                pin=str(body["pin"]),
                family_name=str(body["family_name"]),
                middle_name=str(body.get("middle_name") or ""),
                given_name=str(body["given_name"]),
                date_of_birth=str(body["date_of_birth"]),
                sex=str(body["sex"]),
                residence=str(body.get("residence") or ""),
                residence_province=str(body.get("residence_province") or ""),
                phone=body.get("phone") or None,
                status=str(body["status"]),
            )
        except (KeyError, TypeError) as exc:
            raise UpstreamUnavailable(f"{self.id} registry: malformed record ({exc})") from None

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 400:
            raise InvalidCredentials("the registry rejected the request")
        if response.status_code != 200:
            # 401/403: our API key is wrong — an outage from the person's point of view.
            raise UpstreamUnavailable(f"{self.id} registry answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise UpstreamUnavailable(f"{self.id} registry: response is not a JSON object")
        return body

    @staticmethod
    def _refuse_unless_active(status: Any) -> None:
        if status == "active":
            return
        code = REFUSALS.get(str(status), "not_allowed")
        raise NotAllowed(f"registry status: {status}", code=code)

    def _otp_service(self) -> Any:
        registry, otp_id = self.ctx.registry, self.config.otp_connector
        try:
            service = registry.get(otp_id) if registry is not None else None
        except KeyError:
            service = None
        if service is None or not hasattr(service, "send_otp") or not hasattr(service, "check_otp"):
            raise UpstreamUnavailable(f"SMS OTP connector {otp_id!r} is not available")
        return service

    def _assertion(
        self,
        citizen: Citizen,
        loa: LevelOfAssurance,
        amr: tuple[str, ...],
        extra: Mapping[str, VerifiedAttribute] | None = None,
    ) -> Assertion:
        now = self.ctx.clock()
        attributes = registry_attributes(citizen, now)
        attributes.update(extra or {})
        return Assertion(
            connector_id=self.id,
            subject=citizen.pin,
            attributes=attributes,
            loa=loa,
            amr=amr,
            connector_data={"registry_status": citizen.status},
            authenticated_at=now,
        )
