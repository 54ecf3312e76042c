"""Client metadata (RFC 7591 names, OIDC Dynamic Client Registration): validation with a clear
reason for every refusal, and the sector_identifier_uri check (OIDC Core §8.1)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from connectors.base import UpstreamUnavailable
from connectors.resilience import ResilientHttp
from connectors.safe_fetch import FetchPolicy, FetchRefused, fetch_json

STANDARD_FIELDS = {
    "client_id",
    "client_secret",
    "client_name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "scope",
    "id_token_signed_response_alg",
    "subject_type",
    "sector_identifier_uri",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
    "application_type",
    "require_pushed_authorization_requests",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "default_acr_values",
    "default_max_age",
}
# NIXA's own fields, prefixed so they can never collide with a future standard name.
# nixa_pkce_optional: a legacy confidential client let off PKCE (never a public one).
# nixa_refuse_unknown_scopes: refuse (invalid_scope, naming them) the scopes NIXA would otherwise
# drop silently: unknown ones, ones the client is not registered for, national_id unauthorised.
NIXA_FLAGS = {"nixa_first_party", "nixa_national_id_authorized", "nixa_pkce_optional", "nixa_refuse_unknown_scopes"}
# nixa_minimum_acr: the lowest level this client ever accepts, whatever a request asks for.
# nixa_*_ttl: this client's token lifetimes in seconds; they only ever shorten the deployment's.
LIFETIMES = {"nixa_code_ttl": (10, 600), "nixa_access_token_ttl": (30, 86400), "nixa_id_token_ttl": (30, 86400),
             "nixa_refresh_token_ttl": (60, 365 * 86400)}
# nixa_allowed_claims: the claims (idp/identity/claims.py names) this app may ever receive,
# whatever its scopes or a request ask for; absent: everything its scopes release.
NIXA_FIELDS = NIXA_FLAGS | {"nixa_minimum_acr", "nixa_allowed_claims"} | set(LIFETIMES)
# Standard metadata NIXA would only store and never act on: refused with the reason, rather
# than accepted and silently ignored.
NOT_ACTED_ON = {
    "logo_uri": "NIXA's pages show no image fetched from an app's server (the citizen's address would reach it)",
    "contacts": "NIXA sends nothing to client contacts: give them to the federation's operators",
    "request_uris": "request objects by reference are not supported (use PAR, RFC 9126)",
    "userinfo_signed_response_alg": "UserInfo is answered as plain JSON",
    "id_token_encrypted_response_alg": "ID tokens are signed, not encrypted",
    "frontchannel_logout_uri": "single logout is back-channel only (backchannel_logout_uri)",
    "software_statement": "dynamic registration is not open",
}

GRANT_TYPES = {"authorization_code", "refresh_token", "client_credentials"}
AUTH_METHODS = {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
SIGNING_ALGS = {"ES256", "RS256", "EdDSA"}
MIN_SECRET_LENGTH = 32


class InvalidClientMetadata(ValueError):
    """RFC 7591 §3.2.2 `invalid_client_metadata` / `invalid_redirect_uri`, with a clear message."""

    def __init__(self, message: str, error: str = "invalid_client_metadata") -> None:
        super().__init__(message)
        self.error = error


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_uri(uri: Any, field: str, *, allow_custom_scheme: bool = False) -> str:
    if not isinstance(uri, str) or not uri or len(uri) > 2000:
        raise InvalidClientMetadata(f"{field}: each entry must be a non-empty URL string", "invalid_redirect_uri")
    if "*" in uri:
        # RFC 9700 §2.1: redirect URIs are compared exactly; a pattern is never registered.
        raise InvalidClientMetadata(f"{field}: {uri!r} must not contain a wildcard (exact URIs only)", "invalid_redirect_uri")
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise InvalidClientMetadata(f"{field}: {uri!r} must not carry user information", "invalid_redirect_uri")
    if parts.fragment:
        raise InvalidClientMetadata(f"{field}: {uri!r} must not have a fragment (RFC 6749 §3.1.2)", "invalid_redirect_uri")
    if parts.scheme == "https" and parts.netloc:
        return uri
    if parts.scheme == "http" and (is_loopback(parts.hostname) or parts.hostname == "localhost"):
        return uri
    if allow_custom_scheme and parts.scheme and "." in parts.scheme and parts.scheme not in ("http", "https", "javascript", "data"):
        return uri  # RFC 8252 §7.1 private-use scheme (reverse domain name)
    raise InvalidClientMetadata(f"{field}: {uri!r} must be https (http only on loopback)", "invalid_redirect_uri")


def validate_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalize and check one client's metadata; raise InvalidClientMetadata with a clear reason."""
    if not isinstance(raw, dict):
        raise InvalidClientMetadata("each client must be a JSON object")
    ignored = sorted(set(raw) & set(NOT_ACTED_ON))
    if ignored:
        raise InvalidClientMetadata("; ".join(f"{name}: not accepted, {NOT_ACTED_ON[name]}" for name in ignored))
    unknown = set(raw) - STANDARD_FIELDS - NIXA_FIELDS
    if unknown:
        raise InvalidClientMetadata(f"unknown metadata field(s): {', '.join(sorted(unknown))}")
    md = dict(raw)
    cid = md.get("client_id")
    if not isinstance(cid, str) or not (1 <= len(cid) <= 128) or not cid.isprintable() or " " in cid:
        raise InvalidClientMetadata("client_id: required, 1-128 printable characters without spaces")

    grant_types = md.setdefault("grant_types", ["authorization_code"])
    if not isinstance(grant_types, list) or not grant_types or set(grant_types) - GRANT_TYPES:
        raise InvalidClientMetadata(f"grant_types: must be a non-empty list of {sorted(GRANT_TYPES)}")
    code_flow = "authorization_code" in grant_types
    response_types = md.setdefault("response_types", ["code"] if code_flow else [])
    if response_types not in (["code"], []):
        raise InvalidClientMetadata("response_types: only [\"code\"] is supported (RFC 9700: no implicit/hybrid)")
    if code_flow != (response_types == ["code"]):
        raise InvalidClientMetadata("response_types and grant_types disagree (code needs authorization_code)")

    app_type = md.setdefault("application_type", "web")
    if app_type not in ("web", "native"):
        raise InvalidClientMetadata("application_type: web or native")
    redirects = md.setdefault("redirect_uris", [])
    if not isinstance(redirects, list):
        raise InvalidClientMetadata("redirect_uris: must be a list")
    md["redirect_uris"] = [_check_uri(u, "redirect_uris", allow_custom_scheme=app_type == "native") for u in redirects]
    if code_flow and not redirects:
        raise InvalidClientMetadata("redirect_uris: required for authorization_code clients", "invalid_redirect_uri")
    post_logout = md.setdefault("post_logout_redirect_uris", [])
    if not isinstance(post_logout, list):
        raise InvalidClientMetadata("post_logout_redirect_uris: must be a list")
    md["post_logout_redirect_uris"] = [_check_uri(u, "post_logout_redirect_uris", allow_custom_scheme=app_type == "native") for u in post_logout]
    if md.get("backchannel_logout_uri") is not None:
        _check_uri(md["backchannel_logout_uri"], "backchannel_logout_uri")

    method = md.setdefault("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method: one of {sorted(AUTH_METHODS)}")
    if method == "none" and md.get("nixa_pkce_optional"):
        raise InvalidClientMetadata("nixa_pkce_optional: a public client (auth method none) must always use PKCE (RFC 9700 §2.1.1)")
    if method == "none" and "client_credentials" in grant_types:
        raise InvalidClientMetadata("a public client (auth method none) cannot use client_credentials")
    if method == "private_key_jwt":
        if not md.get("jwks") and not md.get("jwks_uri"):
            raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
        if md.get("jwks") and md.get("jwks_uri"):
            raise InvalidClientMetadata("jwks and jwks_uri are mutually exclusive (RFC 7591 §2)")
        if md.get("jwks"):
            _check_jwks(md["jwks"])
    if md.get("jwks_uri") is not None:
        _check_uri(md["jwks_uri"], "jwks_uri")
    secret = md.get("client_secret")
    if secret is not None:
        if method in ("none", "private_key_jwt"):
            raise InvalidClientMetadata(f"client_secret makes no sense with {method}")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise InvalidClientMetadata(f"client_secret: at least {MIN_SECRET_LENGTH} characters (or leave it out: NIXA generates one)")

    alg = md.setdefault("id_token_signed_response_alg", "ES256")
    if alg not in SIGNING_ALGS:
        raise InvalidClientMetadata(f"id_token_signed_response_alg: one of {sorted(SIGNING_ALGS)}")
    subject_type = md.setdefault("subject_type", "pairwise")
    if subject_type not in ("pairwise", "public"):
        raise InvalidClientMetadata("subject_type: pairwise or public")
    if subject_type == "public" and not md.get("nixa_national_id_authorized"):
        raise InvalidClientMetadata("subject_type public is reserved to clients authorised for the national ID (nixa_national_id_authorized)")
    if md.get("sector_identifier_uri") is not None:
        _check_uri(md["sector_identifier_uri"], "sector_identifier_uri")
    elif subject_type == "pairwise" and code_flow:
        hosts = {urlsplit(u).hostname for u in md["redirect_uris"]}
        if len(hosts) > 1:
            # OIDC Core §8.1: several redirect hosts need a sector_identifier_uri.
            raise InvalidClientMetadata("redirect_uris span several hosts: give a sector_identifier_uri (OIDC Core §8.1)")
    scope = md.setdefault("scope", "openid profile email phone address offline_access")
    if not isinstance(scope, str):
        raise InvalidClientMetadata("scope: a space-separated string")
    _check_levels(md)
    _check_allowed_claims(md)
    for flag in ("require_pushed_authorization_requests", "backchannel_logout_session_required", *NIXA_FLAGS):
        if flag in md and not isinstance(md[flag], bool):
            raise InvalidClientMetadata(f"{flag}: true or false")
    if "client_name" in md and (not isinstance(md["client_name"], str) or len(md["client_name"]) > 200):
        raise InvalidClientMetadata("client_name: a string of at most 200 characters")
    for field in ("client_uri", "policy_uri", "tos_uri"):  # shown to the citizen on the consent page
        if md.get(field) is not None:
            _check_uri(md[field], field)
    for field, (low, high) in LIFETIMES.items():
        value = md.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise InvalidClientMetadata(f"{field}: whole seconds from {low} to {high}")
    return md


def _check_levels(md: dict[str, Any]) -> None:
    """default_acr_values (OIDC Registration §2) and nixa_minimum_acr must name levels NIXA has:
    a typo would otherwise silently mean "low"."""
    from connectors.base import LEVEL_BY_ACR

    supported = " ".join(LEVEL_BY_ACR)
    defaults = md.get("default_acr_values")
    if defaults is not None:
        if not isinstance(defaults, list) or not defaults or any(v not in LEVEL_BY_ACR for v in defaults):
            raise InvalidClientMetadata(f"default_acr_values: a non-empty list of {supported}")
    minimum = md.get("nixa_minimum_acr")
    if minimum is not None and minimum not in LEVEL_BY_ACR:
        raise InvalidClientMetadata(f"nixa_minimum_acr: one of {supported}")


def _check_allowed_claims(md: dict[str, Any]) -> None:
    """nixa_allowed_claims names claims of the catalogue, each once: a typo would otherwise
    silently withhold a claim the agency meant to receive."""
    from idp.identity.claims import CLAIMS

    allowed = md.get("nixa_allowed_claims")
    if allowed is None:
        return
    if not isinstance(allowed, list) or not all(isinstance(c, str) for c in allowed):
        raise InvalidClientMetadata("nixa_allowed_claims: a list of claim names")
    known = {c.name for c in CLAIMS}
    unknown = sorted({c for c in allowed if c not in known})
    if unknown:
        raise InvalidClientMetadata(f"nixa_allowed_claims: unknown claim(s) {', '.join(unknown)[:300]} "
                                    f"(known: {', '.join(sorted(known))}; `sub` is always released)")
    if len(set(allowed)) != len(allowed):
        raise InvalidClientMetadata("nixa_allowed_claims: each claim once")
    md["nixa_allowed_claims"] = sorted(allowed)


def _check_jwks(jwks: Any) -> None:
    from joserfc.jwk import KeySet

    try:
        ks = KeySet.import_key_set(jwks)
    except Exception as exc:
        raise InvalidClientMetadata(f"jwks: not a valid JWK Set ({exc})") from exc
    for key in ks.keys:
        if key.is_private:
            raise InvalidClientMetadata("jwks: must hold public keys only")
        if key.key_type == "oct":
            raise InvalidClientMetadata("jwks: symmetric keys are not accepted")


def check_sector_identifier(uri: str, redirect_uris: list[str], http: ResilientHttp) -> None:
    """OIDC Core §8.1: the sector_identifier_uri must hold a JSON array listing every
    redirect_uri of the client; NIXA fetches it (under the fetch policy) when the client is
    registered or changed."""
    try:
        listed = fetch_json(http, uri, "sector_identifier_uri")
    except UpstreamUnavailable as exc:
        raise InvalidClientMetadata(f"sector_identifier_uri: cannot fetch {uri} ({exc})") from exc
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise InvalidClientMetadata(f"sector_identifier_uri: {uri} must return a JSON array of redirect URIs")
    missing = [u for u in redirect_uris if u not in listed]
    if missing:
        raise InvalidClientMetadata(f"sector_identifier_uri: {uri} does not list {', '.join(missing)} (OIDC Core §8.1)")


def check_fetchable(uri: str, field: str, policy: FetchPolicy) -> None:
    """A URL NIXA will fetch later (jwks_uri) is refused at registration when the fetch policy
    already refuses it: http to a public host, a private or loopback address literal."""
    try:
        policy.check_url(uri)
    except FetchRefused as exc:
        raise InvalidClientMetadata(f"{field}: {exc}") from exc
