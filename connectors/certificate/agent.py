"""The signing agent: a stand-in for the USB-token browser plug-in Vietnamese CAs ship.

`nixa sign --p12 FILE --password PW --origin https://id.example.gov.vn --challenge-file F`
shows the sign-in statement (statement.py), refuses it when it names another origin than the
one the agent was told to expect (a real plug-in knows the page it was opened from: a phishing
page relaying NIXA's statement is caught here, before anything is signed), asks the person to
confirm (`--yes` for scripts), then prints the JSON the sign-in page accepts:

    {"challenge": "<exactly the statement shown>",
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

from connectors.certificate.statement import Statement, origin_of


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


def check_statement(text: str, expected_origin: str) -> Statement:
    """The statement to sign, or ValueError: not a NIXA statement, or made for another origin
    than the one the person is on."""
    statement = Statement.parse(text)
    expected = origin_of(expected_origin)
    if statement.origin != expected:
        raise ValueError(f"the statement is for {statement.origin}, not {expected}: refusing to sign "
                         f"(câu xác nhận dành cho {statement.origin}, không phải {expected}: từ chối ký)")
    return statement


def _read_statement(challenge: str | None, challenge_file: Path | None) -> str:
    if (challenge is None) == (challenge_file is None):
        raise ValueError("give --challenge or --challenge-file (one of them)")
    text = challenge if challenge is not None else challenge_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    # Copied from a page or saved by an editor: CRLF line ends and a final newline are not the
    # statement's; the exact text NIXA issued has neither.
    return text.replace("\r\n", "\n").strip("\n")


def sign(
    p12: Annotated[Path, typer.Option("--p12", help="PKCS#12 file with the key and certificate / tệp PKCS#12", exists=True, dir_okay=False)],
    password: Annotated[str, typer.Option("--password", help="PKCS#12 password / mật khẩu")],
    origin: Annotated[str, typer.Option("--origin", help="the site you are signing in on / địa chỉ trang đăng nhập, e.g. https://id.example.gov.vn")],
    challenge: Annotated[str | None, typer.Option("--challenge", help="statement shown on the sign-in page / câu xác nhận")] = None,
    challenge_file: Annotated[Path | None, typer.Option("--challenge-file", help="file holding the statement / tệp chứa câu xác nhận",
                                                        exists=True, dir_okay=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", help="sign without asking (scripts) / ký không hỏi lại")] = False,
    alg: Annotated[str | None, typer.Option("--alg", help="RS256, PS256 or ES256 (default: by key type)")] = None,
) -> None:
    """Ký câu xác nhận đăng nhập bằng chứng thư số / Sign a sign-in statement with a certificate."""
    try:
        text = _read_statement(challenge, challenge_file)
        check_statement(text, origin)
    except ValueError as exc:
        typer.echo(f"Lỗi / Error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("Bạn sắp ký câu xác nhận sau / You are about to sign this statement:\n", err=True)
    typer.echo(text + "\n", err=True)
    if not yes and not typer.confirm("Ký? / Sign?", default=False, err=True):
        typer.echo("Không ký / Not signed.", err=True)
        raise typer.Exit(1)
    try:
        result = sign_challenge(p12, password, text, alg)
    except ValueError as exc:
        typer.echo(f"Lỗi / Error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, indent=2))
