"""A throwaway test PKI standing in for a licensed Vietnamese CA: root, issuing CA, citizens.

Layout of a PKI directory (everything in it is test material, keys unencrypted on purpose):

    root-ca.pem / root-ca.key          "NIXA Test Root CA" — the trust anchor to configure
    ca.pem / ca.key                    the issuing CA ("VNPT-CA TEST"), signs citizens and ca.crl
    ocsp-signer.pem / ocsp-signer.key  delegated OCSP responder (RFC 6960 §4.2.2.2, id-pkix-ocsp-nocheck)
    untrusted-root-ca.pem / .key       a root that is *not* a trust anchor, for negative tests
    crl/ca.crl, crl/root.crl           DER CRLs (RFC 5280 §5)
    citizens/<label>.p12               PKCS#12 files (key + chain), password in index.json
    index.json                         what the OCSP responder reads: every certificate and its status

Citizens carry the 12-digit personal identification number the way Vietnamese CAs put it in the
subject: `UID=CCCD:001090000001` (userID, 0.9.2342.19200300.100.1.1); `serialNumber` is also
supported (`--id-attribute serialNumber`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from connectors.certificate import profiles
from connectors.personas import AN, CERTIFICATE_PASSWORD, CERTIFICATES

DEMO_PIN = AN.pin
DEMO_NAME = AN.full_name
DEMO_PASSWORD = CERTIFICATE_PASSWORD
DEFAULT_BASE_URL = "http://127.0.0.1:8790"

PIN_PATTERN = re.compile(r"^\d{12}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_USAGES = ("signing", "encipherment")
ID_ATTRIBUTES = ("uid", "serialNumber")

# label, name, pin, kind — issued by `init`: the sandbox personas' certificates (connectors/personas.py).
_INIT_CITIZENS = tuple((c.label, c.name, c.pin, c.kind) for c in CERTIFICATES)


class PKIError(Exception):
    """A PKI command that cannot be carried out (bad PIN, unknown serial, directory exists)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def parse_serial(value: str | int) -> int:
    """Serials as printed by `nixa pki list` (hex), with optional colons/0x, or an int."""
    if isinstance(value, int):
        return value
    text = value.strip().lower().replace(":", "")
    text = text[2:] if text.startswith("0x") else text
    try:
        return int(text, 16)
    except ValueError as exc:
        raise PKIError(f"not a hexadecimal serial number: {value!r}") from exc


def serial_hex(serial: int) -> str:
    text = format(serial, "x")
    return text if len(text) % 2 == 0 else "0" + text


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _new_key(kind: str) -> Any:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class CitizenFiles:
    serial: str
    label: str
    p12: Path
    password: str


class TestPKI:
    """One PKI directory. Every mutation rewrites index.json atomically and re-issues the CRLs."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        if not (self.dir / "index.json").is_file():
            raise PKIError(f"{self.dir} is not a PKI directory (run `nixa pki init` first)")

    # ---- creation --------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: str | Path,
        *,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        password: str = DEMO_PASSWORD,
        force: bool = False,
    ) -> TestPKI:
        """Make the root, the issuing CA, the OCSP signer, the untrusted root and the test citizens.

        `ocsp_url` is the responder URL put in each citizen's AIA; `crl_url` is the base URL of the
        CRL directory (certificates point at `<crl_url>/ca.crl`, the issuing CA at `<crl_url>/root.crl`).
        """
        root = Path(directory)
        if (root / "index.json").exists() and not force:
            raise PKIError(f"{root} already holds a PKI (use --force to replace it)")
        (root / "crl").mkdir(parents=True, exist_ok=True)
        (root / "citizens").mkdir(exist_ok=True)
        now = _now()
        ocsp_url = ocsp_url or f"{DEFAULT_BASE_URL}/ocsp"
        crl_url = (crl_url or f"{DEFAULT_BASE_URL}/crl").rstrip("/")

        # CAs start five years back so that the expired citizen lies inside their validity.
        ca_from, ca_until = now - dt.timedelta(days=5 * 365), now + dt.timedelta(days=10 * 365)
        root_key = _new_key("rsa")
        root_cert = profiles.root_ca(profiles.ROOT_NAME, root_key, ca_from, now + dt.timedelta(days=20 * 365))
        ca_key = _new_key("rsa")
        ca_cert = profiles.issuing_ca(ca_key, root_cert, root_key, ca_from, ca_until, crl_url)
        ocsp_key = _new_key("ec")
        ocsp_cert = profiles.ocsp_signer(ocsp_key, ca_cert, ca_key, now - dt.timedelta(days=1), now + dt.timedelta(days=2 * 365))
        untrusted_key = _new_key("rsa")
        untrusted_cert = profiles.root_ca(profiles.UNTRUSTED_ROOT_NAME, untrusted_key, ca_from, now + dt.timedelta(days=20 * 365))

        for name, cert, key in (
            ("root-ca", root_cert, root_key),
            ("ca", ca_cert, ca_key),
            ("ocsp-signer", ocsp_cert, ocsp_key),
            ("untrusted-root-ca", untrusted_cert, untrusted_key),
        ):
            (root / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_private(root / f"{name}.key", _key_pem(key))

        index = {
            "version": 1,
            "ocsp_url": ocsp_url,
            "crl_url": crl_url,
            "crl_numbers": {"ca": 0, "root": 0},
            "ca_certificates": {"root": serial_hex(root_cert.serial_number), "ca": serial_hex(ca_cert.serial_number)},
            "certificates": [],
        }
        _write_json(root / "index.json", index)
        pki = cls(root)
        pki.issue_personas(password)
        pki.write_crls()
        return pki

    def issue_personas(self, password: str = DEMO_PASSWORD) -> list[str]:
        """Issue the persona certificates this directory lacks (an older demo's var/pki gets the
        new ones); returns their labels. The caller re-issues the CRLs."""
        have = {r["label"] for r in self.records()}
        now = _now()
        issued_labels = []
        for label, name, pin, kind in _INIT_CITIZENS:
            if label in have:
                continue
            kwargs: dict[str, Any] = {"label": label, "password": password}
            if kind == "good-ec-serialnumber":
                kwargs.update(key_type="ec", id_attribute="serialNumber")
            elif kind == "expired":
                kwargs.update(not_before=now - dt.timedelta(days=3 * 365), not_after=now - dt.timedelta(days=365))
            elif kind == "wrong-usage":
                kwargs.update(key_usage="encipherment")
            elif kind == "untrusted":
                kwargs.update(issuer="untrusted")
            issued = self.issue(pin=pin, name=name, **kwargs)
            if kind == "revoked":
                self.revoke(issued.serial, reason="key_compromise")
            issued_labels.append(label)
        return issued_labels

    # ---- index -----------------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        return json.loads((self.dir / "index.json").read_text(encoding="utf-8"))

    def records(self) -> list[dict[str, Any]]:
        return self.index()["certificates"]

    def record(self, serial: str | int) -> dict[str, Any]:
        wanted = serial_hex(parse_serial(serial))
        for record in self.records():
            if record["serial"] == wanted:
                return record
        raise PKIError(f"no certificate with serial {wanted}")

    def by_label(self, label: str) -> dict[str, Any]:
        for record in self.records():
            if record["label"] == label:
                return record
        raise PKIError(f"no certificate labelled {label!r}")

    def p12_path(self, label: str) -> Path:
        return self.dir / self.by_label(label)["p12"]

    # ---- material --------------------------------------------------------------------------

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.dir / f"{name}.pem").read_bytes())

    def key(self, name: str) -> Any:
        return serialization.load_pem_private_key((self.dir / f"{name}.key").read_bytes(), password=None)

    @property
    def trust_anchor_path(self) -> Path:
        return self.dir / "root-ca.pem"

    # ---- issuing and revoking --------------------------------------------------------------

    def issue(
        self,
        *,
        pin: str,
        name: str,
        password: str = DEMO_PASSWORD,
        label: str | None = None,
        key_type: str = "rsa",
        id_attribute: str = "uid",
        key_usage: str = "signing",
        issuer: str = "ca",
        email: str | None = None,
        province: str = "Hà Nội",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CitizenFiles:
        """Issue a citizen certificate and write it, its key and its chain as a PKCS#12 file."""
        if not PIN_PATTERN.match(pin):
            raise PKIError("the personal identification number has 12 digits")
        if key_usage not in KEY_USAGES or id_attribute not in ID_ATTRIBUTES or key_type not in ("rsa", "ec"):
            raise PKIError("unknown key usage, id attribute or key type")
        if label is not None and not LABEL_PATTERN.match(label):
            raise PKIError("a label is letters, digits, '.', '_' or '-' (it names a file)")
        index = self.index()
        label = label or f"citizen-{pin}"
        if any(r["label"] == label for r in index["certificates"]):
            label = f"{label}-{len(index['certificates'])}"
        if issuer == "untrusted":
            issuer_cert, issuer_key, chain = self.cert("untrusted-root-ca"), self.key("untrusted-root-ca"), [self.cert("untrusted-root-ca")]
        else:
            issuer_cert, issuer_key, chain = self.cert("ca"), self.key("ca"), [self.cert("ca"), self.cert("root-ca")]

        now = _now()
        not_before = not_before or now - dt.timedelta(minutes=5)
        not_after = not_after or now + dt.timedelta(days=2 * 365)
        key = _new_key(key_type)
        cert = profiles.citizen(
            name=name, pin=pin, key=key, issuer=issuer_cert, issuer_key=issuer_key,
            not_before=not_before, not_after=not_after, ocsp_url=index["ocsp_url"], crl_url=index["crl_url"],
            id_attribute=id_attribute, signing=key_usage == "signing", province=province, email=email,
        )

        p12_rel = f"citizens/{label}.p12"
        p12 = pkcs12.serialize_key_and_certificates(
            name.encode("utf-8"), key, cert, chain, serialization.BestAvailableEncryption(password.encode("utf-8"))
        )
        _write_private(self.dir / p12_rel, p12)
        (self.dir / "citizens" / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        serial = serial_hex(cert.serial_number)
        index["certificates"].append(
            {
                "serial": serial,
                "label": label,
                "name": name,
                "pin": pin,
                "issuer": "untrusted-root" if issuer == "untrusted" else "ca",
                "subject": cert.subject.rfc4514_string(),
                "not_before": not_before.isoformat(),
                "not_after": not_after.isoformat(),
                "status": "valid",
                "revoked_at": None,
                "reason": None,
                "p12": p12_rel,
                "password": password,
            }
        )
        _write_json(self.dir / "index.json", index)
        return CitizenFiles(serial=serial, label=label, p12=self.dir / p12_rel, password=password)

    def revoke(self, serial: str | int, *, reason: str = "unspecified") -> dict[str, Any]:
        try:
            x509.ReasonFlags[reason]
        except KeyError as exc:
            raise PKIError(f"unknown revocation reason {reason!r}") from exc
        wanted = serial_hex(parse_serial(serial))
        index = self.index()
        for record in index["certificates"]:
            if record["serial"] == wanted:
                if record["status"] != "revoked":
                    record.update(status="revoked", revoked_at=_now().isoformat(), reason=reason)
                _write_json(self.dir / "index.json", index)
                self.write_crls()
                return record
        raise PKIError(f"no certificate with serial {wanted}")

    # ---- CRLs ------------------------------------------------------------------------------

    def write_crls(self, validity: dt.timedelta = dt.timedelta(hours=24)) -> None:
        """Re-issue both CRLs (RFC 5280 §5): the issuing CA's for citizens, the root's for the CA."""
        index = self.index()
        now = _now()
        revoked = [r for r in index["certificates"] if r["issuer"] == "ca" and r["status"] == "revoked"]
        for which, signer, entries in (("ca", "ca", revoked), ("root", "root-ca", [])):
            index["crl_numbers"][which] = int(index["crl_numbers"].get(which, 0)) + 1
            cert, key = self.cert(signer), self.key(signer)
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(cert.subject)
                .last_update(now - dt.timedelta(minutes=1))
                .next_update(now + validity)
                .add_extension(x509.CRLNumber(index["crl_numbers"][which]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            )
            for record in entries:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(record["serial"], 16))
                    .revocation_date(dt.datetime.fromisoformat(record["revoked_at"]))
                    .add_extension(x509.CRLReason(x509.ReasonFlags[record["reason"]]), critical=False)
                    .build()
                )
            crl = builder.sign(key, hashes.SHA256())
            _atomic_write(self.dir / "crl" / f"{which}.crl", crl.public_bytes(serialization.Encoding.DER))
        _write_json(self.dir / "index.json", index)


def _atomic_write(path: Path, data: bytes) -> None:
    # The sandbox reads these files while `nixa pki revoke` rewrites them: rename, never truncate.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_json(path: Path, value: Any) -> None:
    _atomic_write(path, json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8"))
