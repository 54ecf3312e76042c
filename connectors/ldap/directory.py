"""The wire to an LDAP directory: connections with timeouts and TLS, a circuit breaker, and the
three things LdapConnector asks of it (search as the service account, check a password by
binding, tell whether an entry is disabled).

Every operation opens fresh connections (no pool): a directory restart never leaves a stale
socket behind, and nothing is shared between threads. Transport trouble surfaces as
`DirectoryUnreachable`; `Directory.run` turns it into `UpstreamUnavailable` and feeds the breaker.
"""

from __future__ import annotations

import enum
import math
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)

from connectors.base import ConnectorError, UpstreamUnavailable
from connectors.ldap.config import LdapConfig
from connectors.resilience import CircuitBreaker

T = TypeVar("T")

TRANSPORT_ERRORS = (LDAPCommunicationError, LDAPResponseTimeoutError, LDAPStartTLSError, LDAPSSLConfigurationError)
# RFC 4511 §4.1.9 result codes that say "the directory can't serve you now", not "no".
SERVER_TROUBLE = {3, 11, 51, 52, 53, 80}
# ... and for a bind: also operationsError, protocolError, confidentialityRequired (a server
# demanding TLS is a configuration fault, not a wrong password). 53 on a bind is a refusal.
BIND_TROUBLE = {1, 2, 13, 51, 52, 80}
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49

# draft-behera-ldap-password-policy-10 §6.1, the ppolicy overlay's bind response control.
PPOLICY_OID = "1.3.6.1.4.1.42.2.27.8.5.1"
PPOLICY_PASSWORD_EXPIRED = 0
PPOLICY_CHANGE_AFTER_RESET = 2


class DirectoryUnreachable(Exception):
    """The directory did not answer usefully (refused, timed out, TLS failed, server trouble)."""


class BindOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    PASSWORD_EXPIRED = "password_expired"
    MUST_CHANGE = "password_change_required"


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict[str, list[bytes]]  # keys lower-cased: LDAP attribute names are case-insensitive

    def values(self, name: str) -> list[bytes]:
        return self.attributes.get(name.lower(), [])


class Directory:
    def __init__(self, config: LdapConfig, *, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = name
        self.breaker = CircuitBreaker(config.breaker_threshold, config.breaker_reset_after, clock=clock)
        self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file or None)

    # ---- the breaker around one whole operation (a sign-in, a refresh) ---------------------

    def run(self, operation: Callable[[], T]) -> T:
        if not self.breaker.allow():
            raise UpstreamUnavailable(f"{self.name}: circuit open")
        try:
            result = operation()
        except (DirectoryUnreachable, LDAPException) as exc:
            # LDAPException: anything ldap3 raised that the layers below did not expect.
            self.breaker.failure()
            raise UpstreamUnavailable(f"{self.name}: {exc}") from None
        except ConnectorError:
            self.breaker.success()  # the directory answered; the answer was "no"
            raise
        self.breaker.success()
        return result

    # ---- connections --------------------------------------------------------------------

    def _open(self, user: str, password: str) -> ldap3.Connection:
        """Open (and secure) a connection to the first URL that answers; nothing is sent
        before the socket is up, so retrying a failed connect is always safe."""
        last: Exception | None = None
        for attempt in range(1 + self.config.retries):
            for url in self.config.urls:
                # A new Server each time: ldap3 remembers a failed address as unavailable for 5 s.
                server = ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=self.config.timeout, tls=self._tls)
                conn = ldap3.Connection(
                    server,
                    user=user,
                    password=password,
                    authentication=ldap3.SIMPLE,
                    # ldap3 packs SO_RCVTIMEO as whole seconds.
                    receive_timeout=max(1, math.ceil(self.config.timeout)),
                    auto_referrals=False,
                    read_only=True,
                    raise_exceptions=False,
                )
                try:
                    conn.open(read_server_info=False)
                    if self.config.use_starttls and urlsplit(url).scheme == "ldap":
                        # RFC 4513 §3: no fallback to plaintext when the upgrade fails.
                        if not conn.start_tls(read_server_info=False):
                            raise LDAPStartTLSError(f"StartTLS refused: {conn.result.get('description')}")
                    return conn
                except TRANSPORT_ERRORS as exc:
                    last = exc
                    _close(conn)
            if attempt < self.config.retries:
                time.sleep(min(0.05 * 2**attempt, 0.5))
        raise DirectoryUnreachable(f"{type(last).__name__}: {last}")

    @contextmanager
    def service(self) -> Iterator[ServiceSession]:
        conn = self._open(self.config.bind_dn, self.config.bind_password)
        try:
            try:
                bound = conn.bind()
            except TRANSPORT_ERRORS as exc:
                raise DirectoryUnreachable(f"{type(exc).__name__}: {exc}") from None
            if not bound:
                # A refused service account is a configuration fault: nobody can sign in.
                raise DirectoryUnreachable(f"service bind refused: {conn.result.get('description')}")
            yield ServiceSession(conn, self.config.timeout)
        finally:
            _close(conn)

    def check_password(self, dn: str, password: str) -> BindOutcome:
        """Simple bind as `dn` on a connection of its own. The caller has refused an empty
        password: RFC 4513 §5.1.2 makes (dn, "") an unauthenticated bind that succeeds."""
        if not password:
            raise ValueError("empty password")
        conn = self._open(dn, password)
        try:
            try:
                bound = conn.bind(controls=[(PPOLICY_OID, False, None)])
            except TRANSPORT_ERRORS as exc:
                raise DirectoryUnreachable(f"{type(exc).__name__}: {exc}") from None
            except LDAPException:
                return BindOutcome.INVALID  # e.g. a password SASLprep (RFC 4013) prohibits
            code = conn.result.get("result")
            error = _ppolicy_error(conn.result.get("controls") or {})
            if bound:
                return BindOutcome.MUST_CHANGE if error == PPOLICY_CHANGE_AFTER_RESET else BindOutcome.OK
            if code in BIND_TROUBLE:
                raise DirectoryUnreachable(f"bind: {conn.result.get('description')}")
            # ppolicy reports an expired password only after checking that it was right.
            return BindOutcome.PASSWORD_EXPIRED if error == PPOLICY_PASSWORD_EXPIRED else BindOutcome.INVALID
        finally:
            _close(conn)

    def probe(self) -> None:
        """Bind the service account and read the search base (for health)."""
        with self.service() as session:
            session.search(self.config.base_dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE, size_limit=1)


class ServiceSession:
    """Searches as the service account, on one connection."""

    def __init__(self, conn: ldap3.Connection, timeout: float) -> None:
        self._conn = conn
        self._time_limit = max(1, math.ceil(timeout))

    def search(
        self, base: str, search_filter: str, attributes: list[str], *, scope: Any = ldap3.SUBTREE, size_limit: int = 0
    ) -> list[Entry]:
        conn = self._conn
        try:
            conn.search(
                base,
                search_filter,
                search_scope=scope,
                attributes=attributes,
                size_limit=size_limit,
                time_limit=self._time_limit,
                # An alias must not turn a search under base_dn into an entry elsewhere.
                dereference_aliases=ldap3.DEREF_NEVER,
            )
        except TRANSPORT_ERRORS as exc:
            raise DirectoryUnreachable(f"{type(exc).__name__}: {exc}") from None
        code = conn.result.get("result")
        if code == NO_SUCH_OBJECT:
            return []
        if code not in (0, 4):  # 4: sizeLimitExceeded still returns the entries found
            raise DirectoryUnreachable(f"search: {conn.result.get('description')} {conn.result.get('message') or ''}".strip())
        return [
            Entry(item["dn"], {k.lower(): list(v) for k, v in (item.get("raw_attributes") or {}).items()})
            for item in conn.response or []
            if item.get("type") == "searchResEntry"  # continuation references are not followed
        ]

    def matches(self, dn: str, search_filter: str) -> bool:
        """Does the entry at `dn` match the filter? (The directory evaluates it.)"""
        return bool(self.search(dn, search_filter, ["1.1"], scope=ldap3.BASE, size_limit=1))


def _close(conn: ldap3.Connection) -> None:
    try:
        if conn.bound:
            conn.unbind()
        elif not conn.closed:
            conn.strategy.close()
    except LDAPException:
        pass


def _ppolicy_error(controls: dict[str, Any]) -> int | None:
    """The `error` of a PasswordPolicyResponseValue, decoded by hand (it is three BER tags):
    SEQUENCE { warning [0] CHOICE {...} OPTIONAL, error [1] ENUMERATED OPTIONAL }."""
    value = (controls.get(PPOLICY_OID) or {}).get("value")
    if not isinstance(value, bytes | bytearray) or len(value) < 2 or value[0] != 0x30:
        return None
    try:
        body, _ = _ber_slice(value, 1)
        pos = 0
        while pos < len(body):
            tag = body[pos]
            content, pos = _ber_slice(body, pos + 1)
            if tag == 0x81 and content:
                return content[-1]
    except IndexError:
        pass
    return None


def _ber_slice(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a BER length at `pos`; return (content, position after it)."""
    length = data[pos]
    pos += 1
    if length & 0x80:
        octets = length & 0x7F
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    return data[pos : pos + length], pos + length
