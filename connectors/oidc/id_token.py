"""ID token validation for an upstream provider, OIDC Core §3.1.3.7, every step a small check.

Key selection, signature and registered claims go through joserfc; the OpenID-specific rules
(single trusted audience, azp, nonce, iat age, at_hash) are spelled out here.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Mapping
from typing import Any

from authlib.oidc.core.util import create_half_hash
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from connectors.oidc.errors import UpstreamResponseRejected


class UnknownSigningKey(Exception):
    """The token names a `kid` the cached JWKS doesn't have: refetch the JWKS once, then retry."""


def read_header(raw: str) -> Mapping[str, Any]:
    try:
        return jws.extract_compact(raw.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise UpstreamResponseRejected(f"malformed ID token: {exc}", code="id_token_invalid") from exc


def check_algorithm(header: Mapping[str, Any], allowed: Collection[str]) -> str:
    # Checked before any key is touched: "none" and HS* never reach signature verification.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise UpstreamResponseRejected(f"ID token algorithm {alg!r} not accepted", code="id_token_invalid")
    return alg


def select_key(header: Mapping[str, Any], keys: KeySet, alg: str) -> Any:
    kid = header.get("kid")
    if kid is not None:
        try:
            key = keys.get_by_kid(kid)
        except (JoseError, ValueError) as exc:
            raise UnknownSigningKey(kid) from exc
    else:
        # No kid: acceptable only when exactly one published key can verify this algorithm.
        usable = [k for k in keys.keys if k.get("alg") in (None, alg) and k.get("use") in (None, "sig")]
        if len(usable) != 1:
            raise UpstreamResponseRejected("ID token without kid and no single candidate key", code="id_token_invalid")
        key = usable[0]
    if key.get("use") not in (None, "sig") or key.get("alg") not in (None, alg):
        raise UpstreamResponseRejected(f"key {kid!r} is not for {alg} signatures", code="id_token_invalid")
    return key


def verify_signature(raw: str, key: Any, alg: str) -> dict[str, Any]:
    try:
        return dict(jwt.decode(raw, key, algorithms=[alg]).claims)
    except (JoseError, ValueError) as exc:
        raise UpstreamResponseRejected(f"ID token signature: {exc}", code="id_token_invalid") from exc


def check_registered_claims(claims: Mapping[str, Any], *, issuer: str, client_id: str, now: Callable[[], int], leeway: int) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(dict(claims))
    except JoseError as exc:
        raise UpstreamResponseRejected(f"ID token claims: {exc}", code="id_token_invalid") from exc
    if not claims["sub"] or len(claims["sub"]) > 255:  # OIDC Core §2: at most 255 ASCII characters
        raise UpstreamResponseRejected("ID token sub empty or too long", code="id_token_invalid")


def check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    # OIDC Core §3.1.3.7 (3): reject additional audiences not trusted; we trust none but ourselves.
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else list(aud)
    if audiences != [client_id]:
        raise UpstreamResponseRejected("ID token has audiences other than this client", code="id_token_invalid")
    # (5): if azp is present it must be our client_id.
    if "azp" in claims and claims["azp"] != client_id:
        raise UpstreamResponseRejected("ID token azp is not this client", code="id_token_invalid")


def check_nonce(claims: Mapping[str, Any], nonce: str) -> None:
    # (11): the nonce sent in the authorization request must come back unchanged.
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise UpstreamResponseRejected("ID token nonce does not match", code="nonce_mismatch")


def check_age(claims: Mapping[str, Any], now: int, max_age: int) -> None:
    # (10): iat can be used to reject tokens issued too far away from the current time.
    if claims["iat"] < now - max_age:
        raise UpstreamResponseRejected("ID token issued too long ago", code="id_token_invalid")


def check_at_hash(claims: Mapping[str, Any], alg: str, access_token: str | None) -> None:
    # §3.1.3.8: at_hash is optional in the code flow; when present it must match.
    if "at_hash" not in claims or access_token is None:
        return
    expected = create_half_hash(access_token, "EdDSA" if alg == "Ed25519" else alg)
    if expected is None or not hmac.compare_digest(str(claims["at_hash"]).encode(), expected):
        raise UpstreamResponseRejected("ID token at_hash does not match the access token", code="id_token_invalid")


def validate_id_token(
    raw: str,
    *,
    keys: KeySet,
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    nonce: str,
    now: Callable[[], int],
    leeway: int,
    max_age: int,
    access_token: str | None = None,
) -> dict[str, Any]:
    """Return the validated claims, or raise UpstreamResponseRejected / UnknownSigningKey."""
    header = read_header(raw)
    alg = check_algorithm(header, algorithms)
    key = select_key(header, keys, alg)
    claims = verify_signature(raw, key, alg)
    check_registered_claims(claims, issuer=issuer, client_id=client_id, now=now, leeway=leeway)
    check_audience(claims, client_id)
    check_nonce(claims, nonce)
    check_age(claims, now(), max_age)
    check_at_hash(claims, alg, access_token)
    return claims
