"""A deployment of NIXA on loopback, once for this folder: two worker processes on the run's
PostgreSQL and Redis, nginx terminating TLS (a test CA) and asking for client certificates, the
certificate authority's OCSP/CRL sandbox, and a certificate connector that believes only nginx.

nginx has three doors: `pool` balances over both workers (what a deployment has), `a` and `b`
reach one worker each, so a test can begin a step on one worker and finish it on the other while
every request still goes through TLS, the forwarded client address and certificate.

The workers need the shared stores, so these tests are marked `scale_out` and run in the
scale-out run only (tests/conftest.py deselects them in the embedded one).
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from connectors.certificate.pki import TestPKI
from tests.conftest import DB_URL, REDIS_URL
from tests.connectors.sandboxes import running_sandbox
from tests.topology.harness import PROXY_ADDR, Door, Nginx, ServerTLS, Worker, client_context, free_port, make_server_tls

CONNECTOR = "mtls"  # the certificate connector of this deployment (an id no other test folder uses)
CLIENT_ADDR = "127.0.0.3"  # where the test's browsers connect to nginx from
ATTEMPTS = 4  # NIXA_LOGIN_ATTEMPTS_PER_WINDOW on the workers: a throttle test needs few tries


@dataclass
class CitizenCertificate:
    pin: str
    name: str
    cert: Path
    key: Path


@dataclass
class Topology:
    nixa: object  # the test process's own NIXA on the same stores (seeding, reading the audit)
    tls: ServerTLS
    workers: dict[str, Worker]
    nginx: Nginx
    pki: TestPKI
    citizen_cert: CitizenCertificate
    settings: dict[str, str]
    var_dir: Path
    browsers: list[httpx.Client] = field(default_factory=list)

    def door(self, name: str) -> str:
        return self.nginx.doors[name].url

    @property
    def issuer(self) -> str:
        return self.door("pool")

    def browser(self, *, certificate: bool = False) -> httpx.Client:
        """A browser: one cookie jar for every door, connecting from CLIENT_ADDR, with the
        citizen's certificate in its TLS handshakes when asked."""
        cc = self.citizen_cert
        context = client_context(self.tls.ca, cc.cert if certificate else None, cc.key if certificate else None)
        client = httpx.Client(verify=context, follow_redirects=False, timeout=20,
                              transport=httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDR))
        self.browsers.append(client)
        return client

    def doors(self, *names: str, certificate: bool = False) -> list[httpx.Client]:
        """One browser seen through several doors: a client per door sharing one cookie jar."""
        jar = CookieJar()
        out = []
        for name in names:
            client = self.browser(certificate=certificate)
            client.base_url = self.door(name)
            client.cookies = jar
            out.append(client)
        return out

    def backchannel(self, door: str = "pool") -> httpx.Client:
        """A relying party's server, reaching NIXA through nginx."""
        client = self.browser()
        client.base_url = self.door(door)
        return client


def _citizen_certificate(pki: TestPKI, directory: Path) -> CitizenCertificate:
    pin = "0010" + "".join(secrets.choice("0123456789") for _ in range(8))
    name = "Đỗ Thị Mai"
    files = pki.issue(pin=pin, name=name, label=f"topology-{pin}", key_type="ec")
    key, cert, _ = pkcs12.load_key_and_certificates(files.p12.read_bytes(), files.password.encode())
    out = CitizenCertificate(pin, name, directory / "citizen.pem", directory / "citizen.key")
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out


@pytest.fixture(scope="package")
def topology(nixa, master_key, tmp_path_factory) -> Iterator[Topology]:  # noqa: ANN001
    if not (DB_URL and REDIS_URL):
        raise RuntimeError("the topology needs the scale-out stores (NIXA_TEST_DATABASE_URL, NIXA_TEST_REDIS_URL)")
    work = tmp_path_factory.mktemp("topology")
    # nginx's workers run as nobody when the tests run as root: its prefix lives in a folder they can enter.
    nginx_dir = Path(tempfile.mkdtemp(prefix="nixa-nginx-"))
    nginx_dir.chmod(0o755)
    ca_port = free_port()
    ca_url = f"http://127.0.0.1:{ca_port}"
    pki = TestPKI.init(work / "pki", ocsp_url=f"{ca_url}/ocsp", crl_url=f"{ca_url}/crl")
    citizen_cert = _citizen_certificate(pki, work)
    tls = make_server_tls(nginx_dir / "tls")
    doors = [Door("pool", free_port(), "nixa_pool"), Door("a", free_port(), "nixa_a"), Door("b", free_port(), "nixa_b")]
    issuer = doors[0].url
    settings = {
        "NIXA_ISSUER": issuer,
        "NIXA_DATABASE_URL": DB_URL,
        "NIXA_REDIS_URL": REDIS_URL,
        "NIXA_MASTER_KEY": master_key,
        "NIXA_VAR_DIR": str(work / "var"),
        "NIXA_TRUSTED_PROXIES": json.dumps([f"{PROXY_ADDR}/32"]),
        "NIXA_FETCH_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
        "NIXA_LOGIN_ATTEMPTS_PER_WINDOW": str(ATTEMPTS),
        "NIXA_LOG_FORMAT": "json",
    }
    reg = nixa.connectors
    workers: dict[str, Worker] = {}
    nginx = None
    with running_sandbox("connectors.certificate.sandbox", "--pki", str(pki.dir), port=ca_port):
        reg.upsert(CONNECTOR, "certificate", {"trust_anchors": [str(pki.trust_anchor_path)], "trusted_proxies": [f"{PROXY_ADDR}/32"],
                                              "intermediate_certs": [str(pki.dir / "ca.pem")]},
                   loa="high", display_name_vi="Chứng thư số", display_name_en="Certificate")
        try:
            for name in ("a", "b"):
                workers[name] = Worker(f"worker {name}", settings, work / f"worker-{name}.log")
            for worker in workers.values():
                worker.wait_ready()
            a, b = (f"127.0.0.1:{workers[n].port}" for n in ("a", "b"))
            nginx = Nginx(nginx_dir, tls, {"nixa_pool": [a, b], "nixa_a": [a], "nixa_b": [b]}, doors).wait_ready()
            topo = Topology(nixa, tls, workers, nginx, pki, citizen_cert, settings, work / "var")
            yield topo
            for client in topo.browsers:
                client.close()
        finally:
            if nginx is not None:
                nginx.stop()
            for worker in workers.values():
                worker.stop()
            entry = reg.entry(CONNECTOR)
            if entry:
                reg.upsert(CONNECTOR, entry.type, entry.config, loa=int(entry.loa), enabled=False)
            shutil.rmtree(nginx_dir, ignore_errors=True)
