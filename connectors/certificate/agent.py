"""The signing agent: a stand-in for the USB-token browser plug-in Vietnamese CAs ship.

`nixa sign --p12 FILE --password PW --challenge C` prints the JSON the sign-in page accepts:

    {"challenge": "<exactly the challenge shown>",
     "signature": "<base64 signature over the UTF-8 bytes of the challenge>",
     "alg": "RS256" | "PS256" | "ES256",
     "certificate_chain": ["<base64 DER leaf>", "<base64 DER intermediate>", ...]}

The chain is leaf first and leaves out self-signed roots (the verifier has its trust anchors).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_challenge(p12_path: str | Path, password: str, challenge: str, alg: str | None = None) -> dict[str, Any]:
    """Sign `challenge` with the key in a PKCS#12 file; RSA → RS256 (or PS256), P-256 → ES256."""
    bundle = pkcs12.load_pkcs12(Path(p12_path).read_bytes(), password.encode("utf-8"))
    if bundle.key is None or bundle.cert is None:
        raise ValueError("the PKCS#12 file holds no key or no certificate")
    key = bundle.key
    leaf = bundle.cert.certificate
    data = challenge.encode("utf-8")
    if isinstance(key, rsa.RSAPrivateKey):
        alg = alg or "RS256"
        if alg == "RS256":
            raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            raw = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())
        else:
            raise ValueError(f"{alg} does not go with an RSA key (use RS256 or PS256)")
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        if (alg or "ES256") != "ES256":
            raise ValueError(f"{alg} does not go with a P-256 key (use ES256)")
        alg = "ES256"
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JOSE r‖s, as a PKCS#11 token returns
    else:
        raise ValueError("unsupported key type (RSA or EC P-256 expected)")
    chain = [leaf] + [c.certificate for c in bundle.additional_certs if c.certificate.subject != c.certificate.issuer]
    return {
        "challenge": challenge,
        "signature": _b64(raw),
        "alg": alg,
        "certificate_chain": [_b64(c.public_bytes(serialization.Encoding.DER)) for c in chain],
    }


def sign(
    p12: Annotated[Path, typer.Option("--p12", help="PKCS#12 file with the key and certificate / tệp PKCS#12", exists=True, dir_okay=False)],
    password: Annotated[str, typer.Option("--password", help="PKCS#12 password / mật khẩu")],
    challenge: Annotated[str, typer.Option("--challenge", help="challenge shown on the sign-in page / chuỗi thử thách")],
    alg: Annotated[str | None, typer.Option("--alg", help="RS256, PS256 or ES256 (default: by key type)")] = None,
) -> None:
    """Ký chuỗi thử thách đăng nhập bằng chứng thư số / Sign a login challenge with a certificate."""
    try:
        result = sign_challenge(p12, password, challenge, alg)
    except ValueError as exc:
        typer.echo(f"Lỗi / Error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, indent=2))
