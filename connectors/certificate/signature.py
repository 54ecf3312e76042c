"""Checking a signature over a login challenge with the certificate's public key.

Algorithm names are the JOSE ones (RFC 7518 §3.1) because the browser page and the signing
plug-in speak JSON: RS* = RSASSA-PKCS1-v1_5, PS* = RSASSA-PSS (MGF1 with the same hash), ES* =
ECDSA on the matching curve. ECDSA signatures may be the JOSE form (r‖s, what PKCS#11 tokens
return) or DER (what most crypto libraries return); both are accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from connectors.base import InvalidCredentials

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MIN_RSA_BITS = 2048


def b64decode_any(value: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    text = "".join(value.split()).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def _bad(message: str) -> InvalidCredentials:
    return InvalidCredentials(message, code="bad_signature")


def verify(public_key: Any, alg: str, data: bytes, signature_b64: str) -> None:
    """Raise InvalidCredentials(code="bad_signature") unless `signature_b64` signs `data`."""
    if alg not in SUPPORTED_ALGS:
        raise _bad(f"unsupported signature algorithm {alg!r}")
    try:
        signature = b64decode_any(signature_b64)
    except (binascii.Error, ValueError) as exc:
        raise _bad("signature is not base64") from exc
    digest = _HASHES[alg[2:]]()
    try:
        if alg.startswith(("RS", "PS")):
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise _bad(f"{alg} needs an RSA certificate")
            if public_key.key_size < MIN_RSA_BITS:
                raise _bad("RSA key too short")
            if alg.startswith("RS"):
                public_key.verify(signature, data, padding.PKCS1v15(), digest)
            else:
                # Salt length: JOSE says hash length (RFC 7518 §3.5); token plug-ins vary, and the
                # salt length does not weaken verification, so accept any (AUTO).
                public_key.verify(signature, data, padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO), digest)
        else:
            if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, _CURVES[alg]):
                raise _bad(f"{alg} needs an EC certificate on {_CURVES[alg].name}")
            _verify_ecdsa(public_key, signature, data, digest)
    except InvalidSignature as exc:
        raise _bad("the signature does not verify with the certificate's key") from exc


def _verify_ecdsa(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, digest: hashes.HashAlgorithm) -> None:
    size = (public_key.curve.key_size + 7) // 8
    candidates = [signature]
    if len(signature) == 2 * size:
        # JOSE r‖s first; a DER signature of exactly that length is possible, so keep it as a fallback.
        candidates.insert(0, encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")))
    for candidate in candidates:
        try:
            public_key.verify(candidate, data, ec.ECDSA(digest))
            return
        except InvalidSignature:
            continue
    raise InvalidSignature()
