"""Configuration of an upstream OpenID provider connector: every option declared once, with its
default and what it means. The admin stores these keys in the connector's database row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connectors.base import LevelOfAssurance

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")

# Asymmetric algorithms only: an ID token verified with a key from the upstream's JWKS. "none"
# and HS* are never accepted (an HS* token "verified" with a public key is the classic
# algorithm-confusion forgery; HS* keyed by the client secret adds nothing we need).
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519")

# RFC 8176 §2: the registered "amr" values. Upstream values outside the registry are dropped.
# fmt: off
RFC8176_AMR = frozenset({
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin",
    "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia",
})
# fmt: on

DEFAULT_CLAIMS_MAP = {
    "phone_number": "phone_number",
    "email": "email",
    "name": "name",
    "given_name": "given_name",
    "family_name": "family_name",
    "birthdate": "birthdate",
}


@dataclass(frozen=True)
class UpstreamOidcConfig:
    issuer: str
    """The upstream's issuer identifier, exactly as in its discovery document (no trailing-slash
    games: OIDC Discovery §4.3 requires an exact match)."""

    client_id: str
    """NIXA's client id at the upstream."""

    client_secret: str | None = None
    """For client_secret_basic / client_secret_post."""

    token_endpoint_auth_method: str = "client_secret_basic"
    """client_secret_basic | client_secret_post | private_key_jwt."""

    private_key: Mapping[str, Any] | str | None = None
    """private_key_jwt: the private key as a JWK (with `kid`) or PEM. Its public half is
    registered at the upstream."""

    private_key_alg: str | None = None
    """private_key_jwt signing algorithm; default from the key: RS256 for RSA, ES256 for P-256."""

    scopes: tuple[str, ...] = ("openid",)
    """Requested scopes; `openid` is always added."""

    acr_values: tuple[str, ...] = ()
    """Sent as `acr_values` (space-separated, in preference order)."""

    enforce_acr: bool = True
    """When acr_values are configured, the ID token's `acr` must be one of them (acr_values is a
    voluntary request, OIDC Core §3.1.2.1; the relying party checks what came back)."""

    login_hint_format: str | None = "{login_hint}"
    """How the caller's login hint is sent: `{login_hint}` as given, `{msisdn}` → 84912345678,
    `{e164}` → +84912345678, e.g. "MSISDN:{msisdn}" for Mobile Connect. None: never sent."""

    prompt: str | None = None
    """Optional `prompt` sent as is (with `reauthenticate`, "login" is sent when this is unset)."""

    reauthenticate: bool = True
    """Ask the upstream to authenticate the person afresh every time (`prompt=login`,
    `max_age=0`) and refuse an ID token whose `auth_time` predates the request: a session left
    open at the operator (a shared phone, a citizen who signed out of NIXA) never signs in
    silently, whatever number is typed."""

    match_login_hint: bool = True
    """When the person typed a phone number, the upstream's verified `phone_number` must be that
    number: the operator must not answer for another subscriber than the one asked for."""

    asserts_national_id: bool = False
    """Trusted by configuration to assert the national ID (a Vietnamese operator registers every
    SIM against its owner's ID): map the upstream's claim to `national_id` in `claims_map` and
    list it in `verified_claims`. NIXA then still requires the MSISDN signed in to be the
    registry's phone on record for that ID (idp/identity/linking.py)."""

    claims_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLAIMS_MAP))
    """Upstream claim name → NIXA attribute name."""

    verified_claims: tuple[str, ...] = ()
    """Upstream claim names this upstream is trusted to have verified. Only these become
    attributes; every other claim is dropped (an Assertion carries verified attributes only).
    `phone_number` and `email` additionally need the upstream's `*_verified` flag to be true."""

    userinfo: str = "auto"
    """auto: call the UserInfo endpoint when a mapped claim is missing from the ID token;
    always | never."""

    loa: LevelOfAssurance = LevelOfAssurance.SUBSTANTIAL
    """The level of assurance a successful sign-in at this upstream reaches."""

    amr: tuple[str, ...] = ("mca",)
    """RFC 8176 methods recorded for a sign-in here when the upstream's own `amr` is not used.
    The default describes an operator sign-in: "mca", multiple-channel authentication (the
    browser, then a confirmation on the handset over the mobile network). Set it per upstream
    (e.g. ["pwd", "otp", "mfa"] for a ministry IdP with password + OTP)."""

    trust_upstream_amr: bool = False
    """Use the ID token's `amr` (RFC 8176 values only) instead of `amr` when present."""

    timeout: float = 5.0
    """Seconds for each HTTP call to the upstream (discovery, JWKS, token, userinfo)."""

    retries: int = 1
    """Extra attempts for idempotent calls (GET); the token request is never retried."""

    metadata_ttl: float = 3600.0
    """Seconds the discovery document and JWKS are cached in the ephemeral store."""

    id_token_algs: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
    """Accepted ID token algorithms, intersected with the upstream's advertised ones."""

    leeway: int = 60
    """Clock skew tolerated on exp / iat / nbf, seconds."""

    max_id_token_age: int = 600
    """An ID token whose `iat` is older than this is refused, seconds."""

    display_name_vi: str = ""
    """Name on the sign-in page (Vietnamese); the connector row's name when empty."""

    display_name_en: str = ""
    """Name on the sign-in page (English); the connector row's name when empty."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> UpstreamOidcConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown upstream OIDC option(s): {', '.join(unknown)}")
        values = dict(raw)
        for name in ("scopes", "acr_values", "verified_claims", "amr", "id_token_algs"):
            if name in values:
                values[name] = _as_tuple(values[name])
        if "loa" in values:
            values["loa"] = LevelOfAssurance.parse(values["loa"])
        for name in ("timeout", "metadata_ttl"):
            if name in values:
                values[name] = float(values[name])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("issuer must be an https URL without query or fragment")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("issuer must use https (plain http only on loopback, for sandboxes)")
        if not self.client_id:
            raise ValueError("client_id is required")
        if self.token_endpoint_auth_method not in AUTH_METHODS:
            raise ValueError(f"token_endpoint_auth_method must be one of {AUTH_METHODS}")
        if self.token_endpoint_auth_method == "private_key_jwt":
            if not self.private_key:
                raise ValueError("private_key_jwt needs private_key")
            if isinstance(self.private_key, str) and not self.private_key_alg:
                raise ValueError("a PEM private_key needs private_key_alg")
            if self.private_key_alg and self.private_key_alg not in ASYMMETRIC_ALGS:
                raise ValueError("private_key_alg must be an asymmetric algorithm")
        elif not self.client_secret:
            raise ValueError(f"{self.token_endpoint_auth_method} needs client_secret")
        bad_algs = set(self.id_token_algs) - set(ASYMMETRIC_ALGS)
        if bad_algs or not self.id_token_algs:
            raise ValueError(f"id_token_algs must be asymmetric algorithms, not {sorted(bad_algs)}")
        if self.login_hint_format:
            try:
                self.login_hint_format.format(login_hint="x", msisdn="84900000000", e164="+84900000000")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError("login_hint_format may use only {login_hint}, {msisdn}, {e164}") from exc
        if self.userinfo not in ("auto", "always", "never"):
            raise ValueError("userinfo must be auto, always or never")
        unknown_amr = set(self.amr) - RFC8176_AMR
        if unknown_amr:
            raise ValueError(f"amr values must be registered in RFC 8176: {sorted(unknown_amr)}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    @property
    def all_scopes(self) -> tuple[str, ...]:
        return self.scopes if "openid" in self.scopes else ("openid", *self.scopes)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(value)
