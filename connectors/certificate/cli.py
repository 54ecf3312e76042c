"""`nixa pki ...` (the test PKI) and `nixa sign` (the signing agent).

Mount in the main CLI:
    app.add_typer(certificate_cli.app, name="pki")
    app.command("sign")(certificate_cli.sign)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectors.certificate.agent import sign
from connectors.certificate.pki import DEMO_PASSWORD, KEY_USAGES, PKIError, TestPKI

__all__ = ["app", "sign"]

app = typer.Typer(help="PKI thử nghiệm cho chứng thư số / Test PKI for digital-signature certificates", no_args_is_help=True)

DirArg = Annotated[Path, typer.Argument(help="PKI directory / thư mục PKI")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"Lỗi / Error: {exc}", err=True)
    return typer.Exit(1)


def _print_records(pki: TestPKI) -> None:
    for r in pki.records():
        typer.echo(f"  {r['serial']:<42} {r['status']:<8} {r['label']:<18} {r['pin']}  {r['name']}  → {r['p12']} (mật khẩu/password: {r['password']})")


@app.command("init")
def init(
    directory: DirArg,
    ocsp_url: Annotated[str | None, typer.Option("--ocsp-url", help="OCSP responder URL put in certificates (AIA)")] = None,
    crl_url: Annotated[str | None, typer.Option("--crl-url", help="base URL of the CRL directory (certificates point at <url>/ca.crl)")] = None,
    password: Annotated[str, typer.Option("--password", help="password of the PKCS#12 files")] = DEMO_PASSWORD,
    force: Annotated[bool, typer.Option("--force", help="replace an existing PKI")] = False,
) -> None:
    """Tạo CA gốc, CA cấp dưới và chứng thư công dân thử nghiệm / Make the test root, CA and citizens."""
    try:
        pki = TestPKI.init(directory, ocsp_url=ocsp_url, crl_url=crl_url, password=password, force=force)
    except PKIError as exc:
        raise _fail(exc) from exc
    index = pki.index()
    typer.echo(f"PKI thử nghiệm / test PKI: {directory}")
    typer.echo(f"  neo tin cậy / trust anchor: {pki.trust_anchor_path}")
    typer.echo(f"  OCSP: {index['ocsp_url']}   CRL: {index['crl_url']}/ca.crl")
    _print_records(pki)


@app.command("issue")
def issue(
    directory: DirArg,
    pin: Annotated[str, typer.Option("--pin", help="12-digit personal ID number / số định danh cá nhân")],
    name: Annotated[str, typer.Option("--name", help="full name with diacritics / họ và tên")],
    password: Annotated[str, typer.Option("--password")] = DEMO_PASSWORD,
    label: Annotated[str | None, typer.Option("--label", help="file name under citizens/")] = None,
    key_type: Annotated[str, typer.Option("--key-type", help="rsa or ec")] = "rsa",
    id_attribute: Annotated[str, typer.Option("--id-attribute", help="uid (UID=CCCD:...) or serialNumber")] = "uid",
    key_usage: Annotated[str, typer.Option("--key-usage", help=f"one of {', '.join(KEY_USAGES)}")] = "signing",
    email: Annotated[str | None, typer.Option("--email")] = None,
) -> None:
    """Cấp thêm một chứng thư công dân / Issue another citizen certificate (PKCS#12)."""
    try:
        issued = TestPKI(directory).issue(
            pin=pin, name=name, password=password, label=label, key_type=key_type,
            id_attribute=id_attribute, key_usage=key_usage, email=email,
        )
    except PKIError as exc:
        raise _fail(exc) from exc
    typer.echo(f"serial {issued.serial}: {issued.p12} (mật khẩu/password: {issued.password})")


@app.command("revoke")
def revoke(
    directory: DirArg,
    serial: Annotated[str, typer.Argument(help="serial number in hex, as `nixa pki list` prints it")],
    reason: Annotated[str, typer.Option("--reason", help="RFC 5280 reason, e.g. key_compromise, superseded")] = "unspecified",
) -> None:
    """Thu hồi chứng thư và cập nhật CRL / Revoke a certificate and re-issue the CRL."""
    try:
        record = TestPKI(directory).revoke(serial, reason=reason)
    except PKIError as exc:
        raise _fail(exc) from exc
    typer.echo(f"đã thu hồi / revoked: {record['serial']} {record['name']} ({record['reason']})")


@app.command("list")
def list_certificates(directory: DirArg) -> None:
    """Liệt kê chứng thư đã cấp / List issued certificates."""
    try:
        _print_records(TestPKI(directory))
    except PKIError as exc:
        raise _fail(exc) from exc
