"""Every setting NIXA has, declared once with its default and what it is for.

Environment variables with prefix NIXA_ override. Embedded defaults need no configuration:
SQLite under ./var, in-process ephemeral store, a throwaway master key the demo generates.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import os

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# Secret settings may come from a file instead (Docker and Kubernetes secrets): NIXA_<NAME>_FILE.
SECRET_SETTINGS = ("master_key", "previous_master_key", "new_master_key", "database_url", "redis_url", "audit_key", "audit_previous_keys",
                   "pkcs11_pin")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIXA_", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: object) -> object:
        """NIXA_<NAME>_FILE names a file holding the secret (its trailing newline dropped); setting
        both the value and the file is refused rather than guessed."""
        if not isinstance(data, dict):
            return data
        for name in SECRET_SETTINGS:
            path = os.environ.get(f"NIXA_{name.upper()}_FILE")
            if not path:
                continue
            if data.get(name):
                raise ValueError(f"set NIXA_{name.upper()} or NIXA_{name.upper()}_FILE, not both")
            try:
                with open(path, encoding="utf-8") as fh:
                    data[name] = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"NIXA_{name.upper()}_FILE: cannot read {path} ({exc.strerror})") from None
        return data

    issuer: str = Field("http://127.0.0.1:8000", description="The OpenID Provider's issuer URL (no trailing slash).")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite at var_dir/nixa.db.")
    redis_url: str = Field("", description="redis:// URL for the ephemeral store (rediss:// for TLS, verified against the system's CAs or `?ssl_ca_certs=/path/ca.pem`; a user and password as `rediss://user:password@host:6380/0`), or redis+sentinel://HOST:26379[,HOST:26379...]/SERVICE[/DB] for the master Redis Sentinel names (followed across failovers); empty means in-process.")
    var_dir: Path = Field(Path("var"), description="Where the embedded default keeps its files.")
    master_key: str = Field(
        "",
        description="Base64url 32-byte key from which the versioned key-encryption key that seals every secret at rest is derived. Required; only `nixa demo` makes a throwaway one in var_dir/master.key.",
    )
    previous_master_key: str = Field(
        "", description="During a master-key switch: the old master key, accepted for opening only (see Master key and rotation)."
    )
    new_master_key: str = Field("", description="Read by `nixa keys rotate-master` only: the master key to re-seal everything under.")
    audit_key: str = Field(
        "",
        description="Base64url 32-byte HMAC key of the audit chain, kept outside the database. Empty: derived from the master key (set it before rotating the master key: `nixa audit pin-key`).",
    )
    audit_previous_keys: str = Field(
        "", description="Comma-separated earlier audit keys: they only verify the rows they made (after an audit-key change)."
    )
    audit_checkpoint_every: int = Field(1000, ge=1, description="The audit writer signs a checkpoint at least every this many events.")
    audit_checkpoint_seconds: int = Field(300, ge=1, description="The audit writer signs a checkpoint at least every this many seconds while events are uncovered.")

    # Lifetimes, in seconds.
    code_ttl: int = Field(60, description="Authorization code lifetime (RFC 9700 recommends short).")
    access_token_ttl: int = Field(600, description="Access token lifetime.")
    id_token_ttl: int = Field(600, description="ID token lifetime.")
    refresh_token_ttl: int = Field(30 * 86400, description="Refresh token lifetime (absolute per token).")
    refresh_grant_max_lifetime: int = Field(
        90 * 86400,
        description="Absolute lifetime of a refresh grant, from the first token: a rotated refresh token never outlives it; after it the person signs in again.",
    )
    client_assertion_max_lifetime: int = Field(
        300, description="private_key_jwt: how far ahead of now a client assertion's exp may be (its jti is remembered until then)."
    )
    pending_request_ttl: int = Field(1800, description="How long a sign-in may take from /authorize to the code.")
    par_ttl: int = Field(60, description="request_uri lifetime for pushed authorization requests (RFC 9126).")
    sso_session_ttl: int = Field(8 * 3600, description="SSO session absolute lifetime, from sign-in.")
    sso_idle_ttl: int = Field(1800, description="SSO session idle lifetime: unused this long, it ends (0: no idle limit).")
    geoip_database: str = Field("", description="A MaxMind-format city database (.mmdb: GeoLite2-City, GeoIP2-City or a national "
                                "one) for the approximate place of each session on the account page; empty: only the kind of network.")
    key_retire_grace: int = Field(3600, description="Extra time a retired key stays published after its last token expired.")
    key_backend: Literal["database", "pkcs11"] = Field(
        "database",
        description="Where new signing keys are made: database (sealed under the master key) or pkcs11 (generated inside the HSM, never extractable). Existing keys stay where they are until rotated out.",
    )
    pkcs11_module: str = Field("", description="The HSM's PKCS#11 library (.so), e.g. SoftHSM2's libsofthsm2.so. Set whenever a signing key lives in the HSM.")
    pkcs11_token_label: str = Field("", description="Label of the HSM token that holds NIXA's signing keys.")
    pkcs11_pin: str = Field("", repr=False, description="User PIN of that token (or NIXA_PKCS11_PIN_FILE); never logged. A wrong PIN is a refusal to start.")

    default_signing_alg: str = Field("ES256", description="ID token / access token alg when a client names none.")
    cookie_secure: bool | None = Field(None, description="Secure cookies; default: on when the issuer is https.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR ranges (10.0.0.0/8). The client is the rightmost hop outside them (the certificate connector has its own list).",
    )
    local_accounts: bool = Field(True, description="Offer NIXA's own username/password accounts (level low; demo and test accounts).")
    password_memory_kib: int = Field(19 * 1024, ge=8, description="argon2id memory per password check, KiB (OWASP: 19 MiB); "
                                     "hashes made with other parameters are re-hashed at the next successful sign-in.")
    password_time_cost: int = Field(2, ge=1, description="argon2id passes (OWASP: 2).")
    password_parallelism: int = Field(1, ge=1, description="argon2id lanes (OWASP: 1).")
    metrics_allowed_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Who may read /metrics (Prometheus): addresses or CIDR ranges, as seen by NIXA (the scraper, not a proxy).",
    )
    log_format: str = Field("json", description="`nixa serve` logs: json (one object a line, with the request id) or text.")

    max_param_length: int = Field(4096, description="Longest accepted value of any one protocol parameter.")
    max_body_bytes: int = Field(64 * 1024, description="Largest accepted request body.")
    login_attempts_per_window: int = Field(
        10,
        description="Wrong secrets per account and address per window before a lock (a right one gives its attempt back); the account across addresses gets 5×, an address across accounts 10×, a pending request 2×. Locks double on each repeat, up to a day.",
    )
    login_window: int = Field(900, description="Throttling window, seconds.")
    sms_per_address_per_hour: int = Field(20, description="Messages (codes, notices) sent per hour on behalf of one client address (an IPv6 /64 counts as one).")
    sms_per_request: int = Field(5, description="Messages sent per pending sign-in request.")
    sms_global_per_hour: int = Field(10000, description="Messages sent per hour in total, all numbers and addresses (SMS pumping brake).")

    fetch_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Private, loopback or link-local networks (addresses or CIDR ranges) that fetches of client- and upstream-supplied URLs (jwks_uri, sector_identifier_uri, upstream discovery) may reach; empty: public addresses only. Demo mode adds loopback.",
    )

    @field_validator("trusted_proxies", "fetch_allowed_networks", "metrics_allowed_networks")
    @classmethod
    def _are_networks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{info.field_name}: {entry!r} is not an address or CIDR range") from None
        return [entry.strip() for entry in value]

    admin_console_redirect_uris: list[str] = Field(
        default_factory=list,
        description="Redirect URIs of the admin console client (nixa-admin-console), registered at startup with the admin API as its resource; empty: ISSUER/admin/console/callback.",
    )
    registration_token_ttl: int = Field(7 * 86400, description="Lifetime of an initial access token for dynamic client registration (RFC 7591), made by an admin.")

    demo: bool = Field(False, description="Seed demo data and mount the developer pages.")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'nixa.db').as_posix()}"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.issuer.startswith("https://")
