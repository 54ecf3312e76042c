"""`nixa demo`: NIXA on its embedded default with seeded data, a demo agency portal and the
sandbox stand-ins of the national systems (registry, operator SMS and sign-in, CA/OCSP, LDAP).

Everything lives under ./var; secrets are throwaway values generated at first start."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PORTS = {"nixa": 8000, "rp": 8001, "tax": 8002, "registry": 8101, "sms": 8102, "ca": 8103, "ldap": 8104, "operator": 8105}


def _wait(url: str, name: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not start at {url}")


class Sandboxes:
    """The external national systems, as their own processes on loopback."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.procs: list[subprocess.Popen] = []
        self.handles: list[Any] = []
        self.keys = self._keys()
        atexit.register(self.stop)

    def _keys(self) -> dict[str, str]:
        path = self.var / "demo-sandboxes.json"
        if path.exists():
            return json.loads(path.read_text())
        keys = {"registry": secrets.token_urlsafe(24), "sms": secrets.token_urlsafe(24), "operator": secrets.token_urlsafe(32)}
        path.write_text(json.dumps(keys))
        return keys

    def _spawn(self, name: str, module: str, *args: str) -> None:
        log = open(self.var / f"{name}.log", "ab")  # noqa: SIM115
        from connectors.sandbox_process import die_with_parent

        # Each sandbox gets SIGTERM when the demo goes away, however it goes (no orphans on the ports).
        self.procs.append(subprocess.Popen([sys.executable, "-m", module, "--host", "127.0.0.1", *args], stdout=log, stderr=log,
                                           preexec_fn=die_with_parent))

    def start(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        self._spawn("registry", "connectors.population.sandbox", "--port", str(PORTS["registry"]), f"--api-key={self.keys['registry']}",
                    "--db", str(self.var / "registry.db"), "--generate", "2000")
        self._spawn("sms", "connectors.telecom.sandbox", "--port", str(PORTS["sms"]), f"--api-key={self.keys['sms']}")
        from connectors.certificate.pki import TestPKI

        pki_dir = self.var / "pki"
        ca = f"http://127.0.0.1:{PORTS['ca']}"
        if (pki_dir / "index.json").exists():
            pki = TestPKI(pki_dir)
            if pki.issue_personas():  # personas added since this var/pki was made
                pki.write_crls()
        else:
            pki = TestPKI.init(pki_dir, ocsp_url=f"{ca}/ocsp", crl_url=f"{ca}/crl")
        info["pki"] = pki
        self._spawn("ca", "connectors.certificate.sandbox", "--port", str(PORTS["ca"]), "--pki", str(pki_dir))
        try:
            from connectors.ldap.sandbox import start_directory

            ldap = start_directory(self.var / "ldap", PORTS["ldap"])
            self.handles.append(ldap)
            info["ldap"] = ldap.connector_config()
        except Exception as exc:  # slapd missing: the rest of the demo still works
            print(f"  (LDAP directory not started: {exc})")
        if shutil.which("node"):
            from connectors.oidc.sandbox import start_operator

            try:
                nixa_url = os.environ.get("NIXA_ISSUER", f"http://127.0.0.1:{PORTS['nixa']}")
                op = start_operator(PORTS["operator"], "nixa", self.keys["operator"], [f"{nixa_url}/login/callback/operator"],
                                    post_logout_redirect_uris=[f"{nixa_url}/logout/upstream"])
                self.handles.append(op)
                info["operator"] = op.issuer
            except Exception as exc:
                print(f"  (operator sign-in sandbox not started: {exc})")
        _wait(f"http://127.0.0.1:{PORTS['registry']}/health", "registry sandbox", 120)
        _wait(f"http://127.0.0.1:{PORTS['sms']}/health", "operator SMS sandbox")
        _wait(f"http://127.0.0.1:{PORTS['ca']}/health", "CA/OCSP sandbox")
        time.sleep(0.5)
        for proc, name in zip(self.procs, ("registry", "sms", "ca")):
            if proc.poll() is not None:
                # Something else answered /health: most likely a sandbox left over on that port.
                raise RuntimeError(f"the {name} sandbox exited (see {self.var / (name + '.log')}); is its port already in use?")
        return info

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        for h in self.handles:
            try:
                h.stop()
            except Exception:
                pass
        self.handles.clear()


DEMO_CLIENTS = ("demo-portal", "demo-tax", "demo-service")


def demo_clients(var: Path) -> dict[str, str]:
    """The demo clients' secrets, generated at first start (a var/ from an older demo keeps its
    secrets and gets the missing ones)."""
    path = var / "demo-clients.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    secrets_ = {cid: known.get(cid) or secrets.token_urlsafe(32) for cid in DEMO_CLIENTS}
    if secrets_ != known:
        path.write_text(json.dumps(secrets_))
        path.chmod(0o600)
    return secrets_


def seed(nixa: Any, var: Path, info: dict[str, Any], keys: dict[str, str]) -> dict[str, str]:
    from idp.demo.personas import seed_local_accounts

    issuer = nixa.settings.issuer
    secret = demo_clients(var)
    for client_id, port_name, name in (("demo-portal", "rp", "Cổng Dịch vụ công (demo)"), ("demo-tax", "tax", "Thuế điện tử (demo)")):
        rp = f"{urlsplit(issuer).scheme}://127.0.0.1:{PORTS[port_name]}"
        nixa.clients.upsert({
            "client_id": client_id, "client_name": name, "client_secret": secret[client_id],
            "redirect_uris": [f"{rp}/callback"], "post_logout_redirect_uris": [f"{rp}/"],
            "backchannel_logout_uri": f"{rp}/backchannel-logout", "backchannel_logout_session_required": True,
            "grant_types": ["authorization_code", "refresh_token"], "scope": "openid profile email phone address offline_access",
        })
    nixa.clients.upsert({
        "client_id": "demo-spa", "client_name": "Ứng dụng di động (demo)", "token_endpoint_auth_method": "none",
        "application_type": "native", "redirect_uris": ["http://127.0.0.1/callback"], "grant_types": ["authorization_code", "refresh_token"],
    })
    nixa.clients.upsert({
        "client_id": "demo-service", "client_name": "Dịch vụ nội bộ (demo)", "client_secret": secret["demo-service"],
        "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [], "scope": "tax:read",
    })
    # The e-Tax portal's API as a resource server (RFC 8707): tokens asked for with
    # resource=<that URI> carry it as `aud`, and the portal's backend introspects them.
    nixa.resources.upsert(f"{urlsplit(issuer).scheme}://127.0.0.1:{PORTS['tax']}/api", name="API Thuế điện tử (demo)", scopes=["tax:read"],
                          client_id="demo-tax")
    seed_local_accounts(nixa)
    reg = nixa.connectors
    reg.upsert("population", "population", {"base_url": f"http://127.0.0.1:{PORTS['registry']}", "api_key": keys["registry"],
                                            "otp_connector": "telecom", "challenge_loa": "substantial"},
               loa="low", display_name_vi="Cơ sở dữ liệu quốc gia về dân cư",
               display_name_en="National population registry", position=10)
    reg.upsert("telecom", "telecom_sms", {"base_url": f"http://127.0.0.1:{PORTS['sms']}", "api_key": keys["sms"]},
               loa="low", display_name_vi="Mã OTP qua tin nhắn SMS của nhà mạng", display_name_en="SMS one-time code from your operator",
               position=30)
    if "operator" in info:
        reg.upsert("operator", "oidc", {"issuer": info["operator"], "client_id": "nixa", "client_secret": keys["operator"],
                                        "scopes": ["openid", "phone"], "acr_values": ["2"], "login_hint_format": "MSISDN:{msisdn}",
                                        "verified_claims": ["phone_number"], "claims_map": {"phone_number": "phone_number"}},
                   loa="substantial", display_name_vi="Đăng nhập qua nhà mạng di động (Mobile Connect)",
                   display_name_en="Mobile operator sign-in (Mobile Connect)", position=20)
    pki = info["pki"]
    # No trusted proxy in the demo: nothing terminates mTLS in front of it, and a proxy address
    # of 127.0.0.1 would let any local caller assert a certificate by header.
    reg.upsert("certificate", "certificate", {"trust_anchors": [str(pki.trust_anchor_path)], "intermediate_certs": [str(pki.dir / "ca.pem")]},
               loa="high", display_name_vi="Chứng thư số (chữ ký số trên USB token)", display_name_en="Digital-signature certificate (USB token)",
               position=5)
    if "ldap" in info:
        reg.upsert("ldap", "ldap", info["ldap"], loa="low", display_name_vi="Tài khoản cán bộ (thư mục cơ quan)",
                   display_name_en="Agency staff account (directory)", position=40)
    nixa.events.emit("admin.changed", data={"demo": "seeded"})
    return {"portal_secret": secret["demo-portal"], "tax_secret": secret["demo-tax"], "issuer": issuer}


def demo_tls(var: Path, host: str = "127.0.0.1") -> Path:
    """The HTTPS demo's TLS material under var/tls, made at first start with a CA of its own
    (ca.pem, server.pem, server.key; made again when the certificate is within a week of its
    end), and trust.pem: certifi's CAs (httpx's default) plus that one, for the demo's own outgoing calls."""
    import datetime

    import certifi
    from cryptography import x509

    from connectors.sandbox_tls import write_tls_files

    tls = var / "tls"
    cert = tls / "server.pem"
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=7)
    if not cert.exists() or x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc < soon:
        write_tls_files(tls, host, ca_name="NIXA demo CA (this computer only)", days=365)
    (tls / "trust.pem").write_text(Path(certifi.where()).read_text() + (tls / "ca.pem").read_text())
    return tls


def https_note(ca: Path) -> str:
    return f"""
  HTTPS: NIXA and the portals use a certificate from a CA made for this demo alone:
    {ca}
  Trust it in your app (only that app, not the whole machine):
    Node (openid-client)         NODE_EXTRA_CA_CERTS={ca}
    Python (requests, Authlib)   REQUESTS_CA_BUNDLE={ca}
    Python (httpx, ssl)          SSL_CERT_FILE={ca}
    curl                         curl --cacert {ca} ...
  A browser: import it as a trusted authority (Chromium/Chrome: Settings > Privacy and security >
  Security > Manage certificates > Authorities; Firefox: Settings > Privacy & Security >
  Certificates > View Certificates > Authorities), or into the OS store (Debian/Ubuntu: copy it
  to /usr/local/share/ca-certificates/nixa-demo.crt and run update-ca-certificates). Remove it
  when you are done: whoever holds var/tls could impersonate any site to what trusts it. Delete
  var/tls to make a new one.
"""


def run_demo(host: str = "127.0.0.1", port: int = 8000, rp_port: int = 8001, tax_port: int = 8002, https: bool = False) -> None:
    import uvicorn

    PORTS["nixa"], PORTS["rp"], PORTS["tax"] = port, rp_port, tax_port
    var = Path(os.environ.get("NIXA_VAR_DIR", "var")).resolve()
    var.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NIXA_VAR_DIR", str(var))
    scheme = "https" if https else "http"
    tls_options: dict[str, str] = {}
    if https:
        tls = demo_tls(var, host)
        tls_options = {"ssl_certfile": str(tls / "server.pem"), "ssl_keyfile": str(tls / "server.key")}
        # The demo's own calls to its https parts (the portals fetching NIXA's discovery, NIXA
        # posting logout tokens to the portals) trust the demo CA besides the system's.
        os.environ["SSL_CERT_FILE"] = str(tls / "trust.pem")
    os.environ.setdefault("NIXA_ISSUER", f"{scheme}://{host}:{port}")
    from connectors.personas import PERSONAS
    from idp.app import Nixa, create_app
    from idp.demo.rp import E_TAX, PUBLIC_SERVICES, create_rp
    from idp.settings import Settings
    from idp.store.db import migrate

    settings = Settings(demo=True)
    # SIGTERM before uvicorn takes over (it installs its own handlers) still runs the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    migrate(settings.sqlalchemy_url)
    print("NIXA demo: starting the sandboxes of the national systems ...")
    sandboxes = Sandboxes(var)
    info = sandboxes.start()
    nixa = Nixa(settings)
    seeded = seed(nixa, var, info, sandboxes.keys)
    rp_url = f"{scheme}://127.0.0.1:{rp_port}"
    tax_url = f"{scheme}://127.0.0.1:{tax_port}"
    portals = [uvicorn.Server(uvicorn.Config(create_rp(settings.issuer, "demo-portal", seeded["portal_secret"], rp_url, PUBLIC_SERVICES),
                                             host=host, port=rp_port, log_level="warning", **tls_options)),
               uvicorn.Server(uvicorn.Config(create_rp(settings.issuer, "demo-tax", seeded["tax_secret"], tax_url, E_TAX),
                                             host=host, port=tax_port, log_level="warning", **tls_options))]
    for server in portals:
        threading.Thread(target=server.run, daemon=True).start()
    pki = info["pki"]
    print(f"""
  NIXA (OpenID Provider)     {settings.issuer}
  Cổng Dịch vụ công (demo)   {rp_url}
  Thuế điện tử (demo)        {tax_url}   (đăng nhập một lần / single sign-on with the portal above)
  Hộp thư SMS / SMS outbox   http://127.0.0.1:{PORTS['sms']}/outbox

  Tài khoản demo / demo sign-ins (all the same person, Nguyễn Văn An):
    NIXA account        citizen / NixaDemo!2026
    Registry + SMS code ID 001090000001, Nguyễn Văn An, 15/01/1990 identify; the code goes to the phone on record (outbox)
    Certificate         save the statement shown as statement.txt, then: nixa sign --p12 {pki.p12_path('an')} --password nixa-demo --origin {settings.issuer} --challenge-file statement.txt
    Operator sign-in    phone 0912345678, confirm on the operator page
    Staff (LDAP)        nguyenvanan / An@Demo2024 (more in connectors/ldap/staff.ldif)
  {len(PERSONAS)} personas (every level, every refusal): {settings.issuer}/sandbox/personas · docs/personas.md
  Per-client inspector (its last requests and why they failed): {settings.issuer}/sandbox/clients
  Ctrl-C to stop.
""" + (https_note(var / "tls" / "ca.pem") if https else ""), flush=True)
    nixa.backchannel.start()  # logout tokens left pending by an earlier run go out now
    try:
        uvicorn.run(create_app(settings, nixa=nixa), host=host, port=port, log_level="warning", **tls_options)
    finally:
        for server in portals:
            server.should_exit = True
        sandboxes.stop()
