"""The connector interface: what every identity source yields and the capabilities it may have.

A connector declares what it can do by the protocols it implements (Dex style), not by flags.
The login flow (idp/login) dispatches on `isinstance(connector, PasswordConnector)` and so on.
"""

from __future__ import annotations

import enum
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable


class LevelOfAssurance(enum.IntEnum):
    """Three levels, ordered, so `loa >= required` reads as it should."""

    LOW = 1
    SUBSTANTIAL = 2
    HIGH = 3

    @property
    def acr(self) -> str:
        return ACR_BY_LEVEL[self]

    @classmethod
    def from_acr(cls, acr: str) -> LevelOfAssurance | None:
        return LEVEL_BY_ACR.get(acr)

    @classmethod
    def parse(cls, value: str | int | LevelOfAssurance) -> LevelOfAssurance:
        if isinstance(value, LevelOfAssurance):
            return value
        if isinstance(value, int):
            return cls(value)
        by_acr = cls.from_acr(value)
        if by_acr is not None:
            return by_acr
        return cls[value.upper()]


ACR_BY_LEVEL = {
    LevelOfAssurance.LOW: "urn:nixa:loa:low",
    LevelOfAssurance.SUBSTANTIAL: "urn:nixa:loa:substantial",
    LevelOfAssurance.HIGH: "urn:nixa:loa:high",
}
LEVEL_BY_ACR = {v: k for k, v in ACR_BY_LEVEL.items()}


@dataclass(frozen=True)
class VerifiedAttribute:
    """One claim value with where it came from and when it was verified."""

    name: str
    value: Any
    source: str
    verified_at: float


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Assertion:
    """What a connector proves about a person after a successful authentication.

    `connector_data` is opaque to the rest of NIXA and never leaves the server.
    """

    connector_id: str
    subject: str
    attributes: Mapping[str, VerifiedAttribute] = field(default_factory=dict)
    loa: LevelOfAssurance = LevelOfAssurance.LOW
    amr: tuple[str, ...] = ()
    connector_data: Mapping[str, Any] = field(default_factory=dict)
    authenticated_at: float = field(default_factory=time.time)
    # What the source needs to end its own session when the person signs out of NIXA (an
    # upstream OpenID provider: its ID token, as id_token_hint). Kept with the SSO session for
    # its lifetime only, never with the link.
    upstream_session: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", _frozen(self.attributes))
        object.__setattr__(self, "connector_data", _frozen(self.connector_data))
        object.__setattr__(self, "upstream_session", _frozen(self.upstream_session))
        object.__setattr__(self, "amr", tuple(self.amr))

    @property
    def national_id(self) -> str | None:
        """The verified 12-digit personal identification number, if the source proved it."""
        attr = self.attributes.get("national_id")
        return str(attr.value) if attr else None

    def value(self, name: str) -> Any:
        attr = self.attributes.get(name)
        return attr.value if attr else None


@dataclass(frozen=True)
class FormField:
    """A field a password-style connector asks for on the sign-in page."""

    name: str
    label_vi: str
    label_en: str
    kind: str = "text"  # text | password | date | tel
    autocomplete: str = "off"
    pattern: str | None = None


@dataclass(frozen=True)
class Challenge:
    """A started challenge: what the page shows, and server-side state to verify the answer."""

    masked_destination: str
    ttl: int
    resend_after: int
    state: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _frozen(self.state))


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


class Gone:
    """`refresh` result: the person is no longer valid at the source."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Gone({self.reason!r})"


# ---- typed errors: the login flow turns each into a clear page --------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises. `code` picks the friendly page text."""

    code = "connector_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code:
            self.code = code


class InvalidCredentials(ConnectorError):
    code = "invalid_credentials"


class ChallengeExpired(ConnectorError):
    code = "challenge_expired"


class RateLimited(ConnectorError):
    code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after: int = 0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamUnavailable(ConnectorError):
    code = "upstream_unavailable"


class NotAllowed(ConnectorError):
    """The source knows the person but refuses them (deceased, locked, disabled, revoked...)."""

    code = "not_allowed"


def config_value(config: Mapping[str, Any], key: str, default: Any) -> Any:
    """A connector configuration value, or `default` when it is absent or empty (an admin
    clearing a field in the console means "use the default")."""
    value = config.get(key)
    return default if value is None or value == "" else value


MAX_USERNAME = 128
# Control, format (zero-width, bidi overrides) and surrogate characters: invisible variants of a
# name that a directory's string preparation may ignore while a throttle key would not.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def canonical_username(raw: str) -> str:
    """One spelling per username, used for the lookup and for the throttle key alike: NFKC,
    case-folded, whitespace stripped at the ends and collapsed to one space inside. Raises
    ValueError when nothing is left, when it is longer than 128 characters, or when it holds a
    control or invisible format character."""
    if not isinstance(raw, str):
        raise ValueError("a username is text")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    name = " ".join(folded.split())
    if not name:
        raise ValueError("empty username")
    if len(name) > MAX_USERNAME:
        raise ValueError("username too long")
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise ValueError("control character in username")
    return name


# ---- what a connector gets from NIXA ----------------------------------------------------


@dataclass
class ConnectorContext:
    """Everything a connector may use; injected so tests control time, storage and network."""

    connector_id: str
    config: Mapping[str, Any]
    store: Any  # idp.store.ephemeral.EphemeralStore
    clock: Callable[[], float] = time.time
    issuer: str = ""
    registry: Any = None  # connectors.registry.ConnectorRegistry, to reach sibling connectors
    throttle: Any = None  # idp.store.throttle.Throttle: counts secret checks and messages sent
    fetch_policy: Any = None  # connectors.safe_fetch.FetchPolicy for URLs the operator did not write; None: public only


# ---- capabilities -----------------------------------------------------------------------


@runtime_checkable
class Connector(Protocol):
    """Every connector. A class attribute `secret_keys` (a tuple) names the config keys that
    are secrets: the registry seals them at rest and nothing lists them (connectors/registry.py)."""

    id: str
    display_name_vi: str
    display_name_en: str

    def health(self) -> Health: ...


@runtime_checkable
class PasswordConnector(Protocol):
    """Identifier + secret checked by the source (LDAP bind, registry knowledge check)."""

    fields: tuple[FormField, ...]

    def login(self, form: Mapping[str, str]) -> Assertion: ...


@runtime_checkable
class ChallengeConnector(Protocol):
    """Send something to the person and check the answer (SMS OTP through an operator)."""

    challenge_fields: tuple[FormField, ...]

    def start(self, form: Mapping[str, str]) -> Challenge: ...

    def verify(self, challenge_state: Mapping[str, Any], answer: str) -> Assertion: ...


@runtime_checkable
class RedirectConnector(Protocol):
    """Send the browser to an upstream provider and handle its callback (operator sign-in)."""

    def login_url(self, state: str, callback: str, *, login_hint: str | None = None) -> tuple[str, Mapping[str, Any]]:
        """Return the URL and server-side data to keep until the callback (nonce, verifier)."""
        ...

    def handle_callback(self, params: Mapping[str, str], callback: str, saved: Mapping[str, Any]) -> Assertion: ...


@runtime_checkable
class SessionEndingConnector(Protocol):
    """A source with a session of its own that NIXA's sign-out can end (OpenID Connect
    RP-Initiated Logout at an upstream provider): the browser is sent there, then back."""

    def end_session_url(self, upstream_session: Mapping[str, Any], post_logout_redirect_uri: str, state: str) -> str | None:
        """Where to send the browser to end the source's session, or None if it cannot."""
        ...


@runtime_checkable
class CertificateConnector(Protocol):
    """A digital-signature certificate: signed challenge, or mTLS terminated at a trusted proxy."""

    def authenticate(self, cert_chain: list[bytes], signed_challenge: Mapping[str, Any] | None) -> Assertion: ...


@runtime_checkable
class AttributeSource(Protocol):
    """Adds verified attributes to an assertion (the population registry)."""

    def enrich(self, assertion: Assertion) -> Mapping[str, VerifiedAttribute]: ...


@runtime_checkable
class GuardedConnector(Protocol):
    """A source behind a circuit breaker (connectors/resilience.py): `circuit_open()` is true
    while this worker fails calls to it fast, so the chooser can say the method is unavailable
    instead of letting the person fill a form that cannot work, and the metrics can count it."""

    def circuit_open(self) -> bool: ...


@runtime_checkable
class RefreshingConnector(Protocol):
    """Is this person still valid at the source?"""

    def refresh(self, subject: str, connector_data: Mapping[str, Any]) -> Assertion | Gone: ...
