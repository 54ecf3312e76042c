"""Throwaway TLS material for trying the compose deployment (and for the test topology): a CA
and a server certificate signed by it, for the names given (IP addresses or DNS names).

    python make_tls.py DIR [NAME ...]     writes DIR/ca.pem, DIR/server.pem, DIR/server.key
                                           unless DIR/server.pem exists (default name: localhost)

A real deployment mounts the certificate of its own public name instead; browsers trust this
CA only if someone imports DIR/ca.pem. Needs only `cryptography` (a dependency of NIXA).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerTLS:
    ca: Path
    cert: Path
    key: Path


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_server_tls(directory: Path, *names: str) -> ServerTLS:
    """A new CA and a server certificate for `names` (default 127.0.0.1) signed by it."""
    names = names or ("127.0.0.1",)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NIXA throwaway TLS CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=90))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    out = ServerTLS(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    out.key.chmod(0o600)
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))  # last: its presence means done
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory = Path(argv[0])
    if (directory / "server.pem").exists():
        print(f"{directory / 'server.pem'} exists: kept")
        return 0
    made = make_server_tls(directory, *(argv[1:] or ["localhost"]))
    print(f"wrote {made.cert} (CA: {made.ca})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
