"""LdapConnector configuration: every key declared once, with its default and what it means.

The connector's configuration is a dict from the database (`ConnectorContext.config`);
`LdapConfig.from_mapping` validates it once, when the connector is opened, so a bad filter or
a plaintext password path is refused at configuration time instead of at someone's sign-in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPInvalidFilterError
from ldap3.operation.search import parse_filter

# Claim → LDAP attributes, first present wins. inetOrgPerson (RFC 2798) names.
DEFAULT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "name": ("displayName", "cn"),
    "email": ("mail",),
    "phone_number": ("telephoneNumber", "mobile"),
    "preferred_username": ("uid",),
    "employee_number": ("employeeNumber",),
    "title": ("title",),
}


def _doc(text: str, default: Any = None) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class LdapConfig:
    urls: tuple[str, ...] = _doc("ldap:// or ldaps:// URL, or a list of them tried in order (failover).", ())
    bind_dn: str = _doc("Service account DN used to search people and groups (read-only).", "")
    bind_password: str = _doc("Service account password.", "")
    base_dn: str = _doc("Where people are searched (subtree).", "")
    user_filter: str = _doc("Filter finding the person; `{username}` is replaced, escaped (RFC 4515).", "(uid={username})")
    group_base_dn: str = _doc("Where groups are searched; defaults to base_dn.", "")
    group_filter: str = _doc(
        "Filter finding a person's groups; `{dn}` is replaced by the escaped person DN. Empty: no roles.",
        "(&(objectClass=groupOfNames)(member={dn}))",
    )
    group_name_attribute: str = _doc("Group attribute that becomes a role name.", "cn")
    member_of_attribute: str = _doc(
        "Attribute on the person listing group DNs; when present it replaces the group search "
        "(roles = first RDN value of each group under group_base_dn). Empty: always search.",
        "memberOf",
    )
    id_attribute: str = _doc("Stable, rename-proof text id used as subject (entryUUID, nsUniqueId, ipaUniqueID); the DN when "
        "the entry has none (AD's binary objectGUID is not decoded: use '' there, the DN becomes the subject).", "entryUUID")
    disabled_filter: str = _doc(
        "Filter matching a disabled account (evaluated by the directory on the person's entry). "
        "Default: OpenLDAP ppolicy administrative lock. Active Directory: "
        "(userAccountControl:1.2.840.113556.1.4.803:=2); 389-ds: (nsAccountLock=TRUE). Empty: none.",
        "(pwdAccountLockedTime=000001010000Z)",
    )
    attributes: Mapping[str, tuple[str, ...]] = _doc(
        "Claim → LDAP attribute(s) overrides, merged over the defaults; an empty value drops the claim.", None
    )
    timeout: float = _doc("Seconds allowed for connecting and for each response (responses: whole seconds, rounded up).", 5.0)
    use_starttls: bool = _doc("Upgrade ldap:// connections with StartTLS (RFC 4513 §3); never falls back.", False)
    ca_file: str = _doc("PEM CA bundle to verify the directory's certificate; system store when empty.", "")
    allow_insecure: bool = _doc(
        "Allow passwords over plaintext ldap:// to a non-loopback host. Off: such a config is refused.", False
    )
    retries: int = _doc("Extra rounds over the URLs when connecting fails (safe: nothing was sent yet).", 1)
    breaker_threshold: int = _doc("Consecutive failed operations that open the circuit.", 5)
    breaker_reset_after: float = _doc("Seconds the circuit stays open before one trial operation.", 30.0)
    display_name_vi: str = _doc("Name on the sign-in page (Vietnamese).", "Tài khoản cán bộ (LDAP)")
    display_name_en: str = _doc("Name on the sign-in page (English).", "Staff account (LDAP)")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> LdapConfig:
        known = {f.name for f in fields(cls)} | {"url"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown LDAP connector option(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in raw.items() if k not in ("url", "urls", "attributes") and v is not None}
        url = raw.get("url", raw.get("urls"))
        urls = (url,) if isinstance(url, str) else tuple(url or ())
        mapping = {**DEFAULT_ATTRIBUTES}
        for claim, attrs in (raw.get("attributes") or {}).items():
            mapping[claim] = (attrs,) if isinstance(attrs, str) else tuple(attrs or ())
        config = cls(**values, urls=urls, attributes={k: tuple(a for a in v if a) for k, v in mapping.items() if any(v)})
        config.validate()
        return config

    @property
    def groups_base(self) -> str:
        return self.group_base_dn or self.base_dn

    def validate(self) -> None:
        if not self.urls:
            raise ValueError("LDAP connector: `url` is required")
        for key in ("bind_dn", "bind_password", "base_dn"):
            if not getattr(self, key):
                raise ValueError(f"LDAP connector: `{key}` is required")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
                raise ValueError(f"LDAP connector: not an ldap:// or ldaps:// URL: {url!r}")
            if parts.scheme == "ldap" and not self.use_starttls and not self.allow_insecure and not _is_loopback(parts.hostname):
                raise ValueError(
                    f"LDAP connector: {url} would carry passwords in plaintext; use ldaps://, use_starttls, "
                    "or set allow_insecure"
                )
        _check_filter("user_filter", self.user_filter, "{username}")
        if self.group_filter:
            _check_filter("group_filter", self.group_filter, "{dn}")
        if self.disabled_filter:
            _check_filter("disabled_filter", self.disabled_filter, None)
        if self.timeout <= 0 or self.retries < 0 or self.breaker_threshold < 1:
            raise ValueError("LDAP connector: timeout must be > 0, retries ≥ 0, breaker_threshold ≥ 1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_filter(key: str, template: str, placeholder: str | None) -> None:
    if placeholder and placeholder not in template:
        raise ValueError(f"LDAP connector: `{key}` must contain {placeholder}")
    sample = template.replace(placeholder, "x") if placeholder else template
    if not (sample.startswith("(") and sample.endswith(")")):
        raise ValueError(f"LDAP connector: `{key}` must be a parenthesised LDAP filter: {template!r}")
    try:
        parse_filter(sample, None, False, False, None, False)
    except LDAPInvalidFilterError as exc:
        raise ValueError(f"LDAP connector: invalid `{key}` {template!r}: {exc}") from None


def option_reference() -> str:
    """The configuration reference, generated from the declaration above."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for f in fields(LdapConfig):
        name = "url" if f.name == "urls" else f.name
        default = "" if f.default in (None, ()) else repr(f.default)
        rows.append(f"| `{name}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)
