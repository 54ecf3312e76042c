"""Agency staff directories (G2E): sign in with a directory account, by LDAP bind.

A sign-in: the service account searches the person with `user_filter` (the username escaped
per RFC 4515, so it can only ever be a value), refuses a disabled entry, then binds as the
person's DN with the password on a connection of its own. Groups become `roles`.

Choices (the safer one where there was a choice):
- An empty password is refused before any bind: RFC 4513 §5.1.2 makes a bind with a DN and
  an empty password an "unauthenticated" bind that many servers accept.
- An unknown username and a wrong password give the same error; an unknown username still
  costs one bind (to a DN that cannot exist) so both take the same time.
- A disabled account is refused before its password is checked: OpenLDAP's ppolicy refuses
  every bind of a locked account, so the password can't be checked. Whoever types that username
  learns the account exists and is disabled; the flow's throttling applies as to any failure.
- A password the directory says must be changed (ppolicy changeAfterReset) or has expired is
  refused: NIXA does not change directory passwords.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Mapping
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from connectors.base import (
    Assertion,
    ConnectorContext,
    FormField,
    Gone,
    Health,
    InvalidCredentials,
    LevelOfAssurance,
    NotAllowed,
    UpstreamUnavailable,
    VerifiedAttribute,
    canonical_username,
)
from connectors.ldap.config import LdapConfig
from connectors.ldap.directory import BindOutcome, Directory, Entry, ServiceSession

INVALID_MESSAGE = "Tên đăng nhập hoặc mật khẩu không đúng / Wrong username or password"
MAX_PASSWORD = 1024
# A DN no directory has: binding to it fails like a wrong password does.
NONEXISTENT_DN = "cn=nixa-no-such-account-7f3c9e"


class LdapConnector:
    """Password-style and refreshing connector for an LDAP staff directory."""

    config_class = LdapConfig
    config_aliases = {"url": "urls"}
    secret_keys = ("bind_password",)
    fields = (
        FormField("username", "Tên đăng nhập", "Username", autocomplete="username"),
        FormField("password", "Mật khẩu", "Password", kind="password", autocomplete="current-password"),
    )

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.id = ctx.connector_id
        self.config = LdapConfig.from_mapping(ctx.config)
        self.display_name_vi = self.config.display_name_vi
        self.display_name_en = self.config.display_name_en
        self.source = f"ldap:{self.id}"
        self.directory = Directory(self.config, name=f"ldap:{self.id}", clock=ctx.clock)

    # ---- PasswordConnector ----------------------------------------------------------------

    def login(self, form: Mapping[str, str]) -> Assertion:
        # The canonical spelling is what is looked up (and what the flow's throttle counts), so
        # " NguyenVanAn", "nguyenvanan\t" and full-width variants are one account, one counter.
        try:
            username = canonical_username(str(form.get("username") or ""))
        except ValueError:
            raise InvalidCredentials(INVALID_MESSAGE) from None
        password = str(form.get("password") or "")
        if not password or len(password) > MAX_PASSWORD:
            raise InvalidCredentials(INVALID_MESSAGE)
        return self.directory.run(lambda: self._login(username, password))

    def _login(self, username: str, password: str) -> Assertion:
        user_filter = self.config.user_filter.replace("{username}", escape_filter_chars(username))
        with self.directory.service() as session:
            found = session.search(self.config.base_dn, user_filter, self._wanted_attributes(), size_limit=2)
            if len(found) != 1:
                # None, or an ambiguous filter: never guess which person is meant.
                self.directory.check_password(f"{NONEXISTENT_DN},{self.config.base_dn}", password)
                raise InvalidCredentials(INVALID_MESSAGE)
            entry = found[0]
            if self._is_disabled(session, entry):
                raise NotAllowed("Tài khoản đã bị vô hiệu hoá / Account disabled", code="account_disabled")
            outcome = self.directory.check_password(entry.dn, password)
            if outcome is BindOutcome.INVALID:
                raise InvalidCredentials(INVALID_MESSAGE)
            if outcome is BindOutcome.MUST_CHANGE:
                raise NotAllowed("Cần đổi mật khẩu / Password must be changed", code="password_change_required")
            if outcome is BindOutcome.PASSWORD_EXPIRED:
                raise NotAllowed("Mật khẩu đã hết hạn / Password expired", code="password_expired")
            authenticated_at = self.ctx.clock()
            return self._assertion(session, entry, authenticated_at)

    # ---- RefreshingConnector ----------------------------------------------------------------

    def refresh(self, subject: str, connector_data: Mapping[str, Any]) -> Assertion | Gone:
        """Is the person still in the directory and enabled? Current attributes and roles if so."""
        return self.directory.run(lambda: self._refresh(subject, connector_data))

    def _refresh(self, subject: str, connector_data: Mapping[str, Any]) -> Assertion | Gone:
        with self.directory.service() as session:
            if "=" in subject:  # the subject is a DN (the directory has no id_attribute)
                if not _is_under(subject, self.config.base_dn):
                    return Gone("deleted")
                found = session.search(subject, "(objectClass=*)", self._wanted_attributes(), scope=ldap3.BASE, size_limit=1)
            elif self.config.id_attribute:
                by_id = f"({self.config.id_attribute}={escape_filter_chars(subject)})"
                found = session.search(self.config.base_dn, by_id, self._wanted_attributes(), size_limit=2)
            else:
                found = []
            if len(found) != 1:
                return Gone("deleted")
            if self._is_disabled(session, found[0]):
                return Gone("disabled")
            authenticated_at = float(connector_data.get("authenticated_at") or self.ctx.clock())
            return self._assertion(session, found[0], authenticated_at)

    # ---- Connector ----------------------------------------------------------------------------

    def circuit_open(self) -> bool:
        return self.directory.breaker.state == "open"

    def health(self) -> Health:
        started = time.perf_counter()
        try:
            self.directory.probe()
        except UpstreamUnavailable as exc:
            return Health(False, str(exc))
        except Exception as exc:  # health never raises: the directory layer wraps transport errors
            return Health(False, f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return Health(True, f"circuit {self.directory.breaker.state}", latency_ms=round(latency, 1))

    # ---- building the assertion -----------------------------------------------------------

    def _wanted_attributes(self) -> list[str]:
        wanted = {a for attrs in self.config.attributes.values() for a in attrs}
        for extra in (self.config.id_attribute, self.config.member_of_attribute):
            if extra:
                wanted.add(extra)
        return sorted(wanted)

    def _is_disabled(self, session: ServiceSession, entry: Entry) -> bool:
        return bool(self.config.disabled_filter) and session.matches(entry.dn, self.config.disabled_filter)

    def _assertion(self, session: ServiceSession, entry: Entry, authenticated_at: float) -> Assertion:
        now = self.ctx.clock()
        attributes: dict[str, VerifiedAttribute] = {}
        for claim, ldap_names in self.config.attributes.items():
            value = next((v for name in ldap_names for v in _texts(entry.values(name))), None)
            if value is not None:
                attributes[claim] = VerifiedAttribute(claim, value, self.source, now)
        attributes["roles"] = VerifiedAttribute("roles", self._roles(session, entry), self.source, now)
        ids = _texts(entry.values(self.config.id_attribute)) if self.config.id_attribute else []
        subject = ids[0].lower() if ids else entry.dn
        return Assertion(
            connector_id=self.id,
            subject=subject,
            attributes=attributes,
            loa=LevelOfAssurance.LOW,
            amr=("pwd",),
            connector_data={"dn": entry.dn, "authenticated_at": authenticated_at},
            authenticated_at=authenticated_at,
        )

    def _roles(self, session: ServiceSession, entry: Entry) -> list[str]:
        names: set[str] = set()
        member_of = _texts(entry.values(self.config.member_of_attribute)) if self.config.member_of_attribute else []
        if member_of:
            for group_dn in member_of:
                if _is_under(group_dn, self.config.groups_base):
                    names.add(_first_rdn_value(group_dn))
        elif self.config.group_filter:
            group_filter = self.config.group_filter.replace("{dn}", escape_filter_chars(entry.dn))
            name_attr = self.config.group_name_attribute
            for group in session.search(self.config.groups_base, group_filter, [name_attr]):
                names.update(_texts(group.values(name_attr))[:1])
        return sorted(n for n in names if n)


def _texts(values: list[bytes]) -> list[str]:
    """Directory strings are UTF-8 (RFC 4517 §3.3.6); keep them NFC for stable comparisons."""
    out = []
    for raw in values:
        try:
            out.append(unicodedata.normalize("NFC", raw.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return out


def _dn_parts(dn: str) -> list[tuple[str, str]]:
    return [(attr.lower(), value.lower()) for attr, value, _ in parse_dn(dn, escape=False, strip=True)]


def _is_under(dn: str, base: str) -> bool:
    try:
        parts, base_parts = _dn_parts(dn), _dn_parts(base)
    except LDAPInvalidDnError:
        return False
    return len(parts) > len(base_parts) and parts[-len(base_parts) :] == base_parts


def _first_rdn_value(dn: str) -> str:
    try:
        return parse_dn(dn, escape=False, strip=True)[0][1]
    except (LDAPInvalidDnError, IndexError):
        return ""
