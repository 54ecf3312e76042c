"""The claims NIXA releases, scope by scope: one table that UserInfo releases from (`release`,
`SCOPE_CLAIMS`) and that docs/claims.md is generated from (`nixa docs generate`), so the
reference cannot drift from what apps receive.

OIDC Core §5.4 names the standard scopes' claims; `national_id` and `roles` are NIXA's own. A
claim is released only when a source verified it for the person (or the person's own NIXA
account holds it, for test and demo accounts): an app must treat every claim as optional."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from connectors.base import VerifiedAttribute


@dataclass(frozen=True)
class ReleasedClaim:
    name: str
    scope: str
    type: str  # its JSON type: string, boolean, object, array
    format: str
    sources: str  # which identity sources provide it
    example: Any = None  # None: no source of NIXA's provides it today
    pattern: str | None = None  # what every released value matches (tests/identity/test_claims.py)


REGISTRY = "population registry"
DIRECTORY = "staff directory (LDAP)"
UPSTREAM = "an upstream OpenID provider, when its connector maps and verifies it (`claims_map`, `verified_claims`)"
_NOT_PROVIDED = ("no source of NIXA's provides it today; released only if an upstream OpenID provider's connector maps and "
                 "verifies it (`claims_map`, `verified_claims`)")
DERIVED = "NIXA, from the source of the value"

CLAIMS: tuple[ReleasedClaim, ...] = (
    ReleasedClaim("name", "profile", "string", "Full name with diacritics, as the source holds it (family name first)",
                  f"{REGISTRY}; certificate (subject CN); {DIRECTORY} (`displayName`, `cn`); {UPSTREAM}", "Nguyễn Văn An"),
    ReleasedClaim("family_name", "profile", "string", "Family name (họ)", REGISTRY, "Nguyễn"),
    ReleasedClaim("given_name", "profile", "string", "Given name (tên)", REGISTRY, "An"),
    ReleasedClaim("middle_name", "profile", "string", "Middle name (tên đệm); absent when the person has none", REGISTRY, "Văn"),
    ReleasedClaim("nickname", "profile", "string", "", _NOT_PROVIDED),
    ReleasedClaim("preferred_username", "profile", "string", "The directory user id (staff only)", f"{DIRECTORY} (`uid`)", "nguyenvanan"),
    ReleasedClaim("profile", "profile", "string", "URL", _NOT_PROVIDED),
    ReleasedClaim("picture", "profile", "string", "URL", _NOT_PROVIDED),
    ReleasedClaim("website", "profile", "string", "URL", _NOT_PROVIDED),
    ReleasedClaim("gender", "profile", "string", "`male` or `female`, as the registry records sex", REGISTRY, "male",
                  r"^(male|female)$"),
    ReleasedClaim("birthdate", "profile", "string", "ISO 8601 `YYYY-MM-DD`", REGISTRY, "1990-01-15", r"^\d{4}-\d{2}-\d{2}$"),
    ReleasedClaim("zoneinfo", "profile", "string", "", _NOT_PROVIDED),
    ReleasedClaim("locale", "profile", "string", "", _NOT_PROVIDED),
    ReleasedClaim("updated_at", "profile", "number", "", _NOT_PROVIDED),
    ReleasedClaim("email", "email", "string", "Address as the source holds it", f"{DIRECTORY} (`mail`); {UPSTREAM}",
                  "an.nguyen@mof.gov.vn", r"^[^@\s]+@[^@\s]+$"),
    ReleasedClaim("email_verified", "email", "boolean", "`true` when a source verified it; `false` for a NIXA account's own",
                  DERIVED, True),
    ReleasedClaim("phone_number", "phone", "string", "E.164, `+84` and nine digits (OIDC Core §5.1)",
                  f"{REGISTRY} (the phone on record); mobile operator (the number it signed in); {DIRECTORY}",
                  "+84912345678", r"^\+84\d{9}$"),
    ReleasedClaim("phone_number_verified", "phone", "boolean", "`true` when a source verified it; `false` for a NIXA account's own",
                  DERIVED, True),
    ReleasedClaim("address", "address", "object",
                  "OIDC Core §5.1.1 address: `formatted` (the registry's residence), `region` (province), `country` (`VN`)",
                  REGISTRY, {"formatted": "Số 12 phố Hàng Bài, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội", "region": "Hà Nội",
                             "country": "VN"}),
    ReleasedClaim("national_id", "national_id", "string",
                  "The 12-digit personal identification number (số định danh cá nhân); only to clients an administrator "
                  "authorised (`nixa_national_id_authorized`)", f"{REGISTRY}; certificate", "001090000001", r"^\d{12}$"),
    ReleasedClaim("roles", "roles", "array", "Names of the directory groups the staff member belongs to (sorted)",
                  DIRECTORY, ["ke-toan", "thanh-tra"]),
)

# Claims by scope, as UserInfo releases them.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {}
for _claim in CLAIMS:
    SCOPE_CLAIMS.setdefault(_claim.scope, ())
    SCOPE_CLAIMS[_claim.scope] += (_claim.name,)
# "verified_claims" (OIDC4IDA) releases the same claims with their source and time.

# Claims the ID token carries whatever the scope (idp/oidc/tokens.py issue_id_token).
ID_TOKEN_CLAIMS: tuple[tuple[str, str], ...] = (
    ("iss", "The issuer, exactly as in discovery: compare it character for character."),
    ("sub", "Pairwise per sector (a different value for every other agency). Only a client authorised for the national ID "
            "and registered with `subject_type: public` gets one value for the person at every app. Key your accounts on "
            "`iss` + `sub`."),
    ("aud", "Your client_id (a string)."),
    ("azp", "Your client_id."),
    ("iat", "Issued at, seconds since the epoch."),
    ("exp", "Expiry: `NIXA_ID_TOKEN_TTL` (600 s) after `iat`, or your `nixa_id_token_ttl`."),
    ("auth_time", "When the person authenticated at the level the token's `acr` names (not the session's first sign-in)."),
    ("nonce", "The `nonce` of your authorization request (code grant only; absent on refresh)."),
    ("acr", "The level reached: `urn:nixa:loa:low`, `urn:nixa:loa:substantial`, `urn:nixa:loa:high` (levels.md)."),
    ("amr", "RFC 8176 values of what was used: `pwd` (password, directory), `sms` + `otp` (SMS code), `otp` (authenticator "
            "app), `hwk`/`swk`/`sc` (certificate by key storage), `pop` + `mfa` (passkey), or the upstream's configured values."),
    ("sid", "The session as your app sees it (different for every app); logout tokens carry the same value."),
    ("at_hash", "Left half of the hash of the access token (OIDC Core §3.1.3.6)."),
)


def permitted(name: str, allowed: Collection[str] | None) -> bool:
    """Whether an app limited to `allowed` claims (its nixa_allowed_claims; None: no limit) may
    receive `name`. A `*_verified` claim follows the claim it qualifies."""
    if allowed is None:
        return True
    return name in allowed or (name.endswith("_verified") and name[: -len("_verified")] in allowed)


def releasable(scopes: set[str], *, national_id_allowed: bool, allowed: Collection[str] | None = None) -> list[str]:
    """The claim names `scopes` may release to an app, in catalogue order (the consent page
    shows these: never more than UserInfo will send)."""
    names = {n for sc in scopes if sc != "national_id" or national_id_allowed for n in SCOPE_CLAIMS.get(sc, ())}
    return [c.name for c in CLAIMS if c.name in names and permitted(c.name, allowed)]


def release(attrs: dict[str, VerifiedAttribute], scopes: set[str], *, national_id_allowed: bool,
            allowed: Collection[str] | None = None) -> dict[str, Any]:
    """The claims `scopes` release from a person's verified attributes (UserInfo's body), within
    the app's `allowed` claims (nixa_allowed_claims) whatever the scopes ask for."""
    out: dict[str, Any] = {}
    for scope in scopes:
        if scope == "national_id" and not national_id_allowed:
            continue
        for name in SCOPE_CLAIMS.get(scope, ()):
            if name in attrs and permitted(name, allowed):
                out[name] = claim_value(name, attrs[name].value)
    # Sources store only what they verified; local (test/demo) accounts are self-asserted.
    for name in ("phone_number", "email"):
        if name in out and f"{name}_verified" not in out and permitted(f"{name}_verified", allowed):
            out[f"{name}_verified"] = attrs[name].source != "local"
    return out


def claim_value(name: str, value: Any) -> Any:
    """An address held as a plain string is released as OIDC Core's address object."""
    return {"formatted": value} if name == "address" and isinstance(value, str) else value
