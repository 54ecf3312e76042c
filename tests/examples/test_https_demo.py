"""The HTTPS sandbox (`nixa demo --https`): NIXA served over TLS with the certificate of a CA the
demo makes at first start. Certified client libraries then work with their default settings:
openid-client without `allowInsecureRequests`, trusting only that CA (NODE_EXTRA_CA_CERTS), and
Authlib's Flask client trusting it through REQUESTS_CA_BUNDLE, each complete a sign-in; without
the CA, openid-client refuses NIXA's certificate (its TLS checks are on). Under https NIXA's
cookies are `__Host-` and Secure."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from idp.demo.run import demo_tls
from tests.conftest import LiveServer, free_port, make_citizen, make_settings, register_client
from tests.examples.conftest import SAMPLES, Person, SampleApp, pre_json

TRUST_VARIABLE = {"node-openid-client": "NODE_EXTRA_CA_CERTS", "python-authlib": "REQUESTS_CA_BUNDLE"}


@pytest.fixture(scope="module")
def https_nixa(var_dir, database_url, master_key, tmp_path_factory) -> Iterator[LiveServer]:  # noqa: ANN001
    """A NIXA worker on the shared database, issuer https://127.0.0.1:PORT, with the demo's TLS material."""
    from idp.app import Nixa, create_app

    tls = demo_tls(tmp_path_factory.mktemp("demo-var"))
    port = free_port()
    settings = make_settings(var_dir, database_url, master_key, issuer=f"https://127.0.0.1:{port}")
    nixa = Nixa(settings)
    server = LiveServer(create_app(settings, nixa=nixa), port, scheme="https", ssl_certfile=str(tls / "server.pem"),
                        ssl_keyfile=str(tls / "server.key")).start()
    server.nixa, server.tls = nixa, tls
    yield server
    server.stop()


def test_the_demo_ca_is_made_once_and_names_this_computer(tmp_path: Path) -> None:
    tls = demo_tls(tmp_path)
    ca, cert = (tls / "ca.pem").read_bytes(), x509.load_pem_x509_certificate((tls / "server.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert oct((tls / "server.key").stat().st_mode & 0o777) == "0o600"
    assert demo_tls(tmp_path) == tls and (tls / "ca.pem").read_bytes() == ca  # a second start keeps the CA people trusted
    assert (tls / "trust.pem").read_text().endswith((tls / "ca.pem").read_text())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_certified_library_signs_in_over_https_trusting_only_the_demo_ca(name: str, https_nixa) -> None:  # noqa: ANN001
    ca = https_nixa.tls / "ca.pem"
    app_url = f"http://127.0.0.1:{free_port()}"
    client = register_client(https_nixa.nixa, redirect_uri=f"{app_url}/callback", post_logout_redirect_uris=[f"{app_url}/"],
                             scope="openid profile email phone address")
    citizen = make_citizen(https_nixa.nixa, name="Vũ Hải Yến")
    app = SampleApp(SAMPLES[name], https_nixa.url, client.client_id, client.secret, app_url, env={TRUST_VARIABLE[name]: str(ca)})
    person = Person(https_nixa.url, verify=ssl.create_default_context(cafile=str(ca)))
    try:
        if name == "node-openid-client":
            assert "allowInsecureRequests: off" in app.output()
        page = person.get(f"{app_url}/login?acr=urn:nixa:loa:low")
        assert str(page.url).startswith(https_nixa.url + "/interaction/"), page.url
        person.submit("/local", username=citizen.username, password=citizen.password)
        page = person.consent()
        assert str(page.url) == app_url + "/", (page.url, page.text[:800], app.output()[-2000:])
        claims = pre_json(page, "id-token-claims")
        assert claims["iss"] == https_nixa.url and claims["acr"] == "urn:nixa:loa:low"
        assert pre_json(person.get(f"{app_url}/userinfo"), "userinfo")["name"] == "Vũ Hải Yến"
        nixa_cookies = [c for c in person.http.cookies.jar if c.port in (None, str(https_nixa.port)) and c.domain.startswith("127.0.0.1")]
        session_cookies = [c for c in nixa_cookies if c.name.startswith("__Host-")]
        assert session_cookies and all(c.secure and c.path == "/" for c in session_cookies), [(c.name, c.secure) for c in nixa_cookies]
    finally:
        person.close()
        app.stop()


def test_openid_client_refuses_nixa_over_https_without_the_demo_ca(https_nixa) -> None:  # noqa: ANN001
    sample = SAMPLES["node-openid-client"]
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE")}
    done = subprocess.run(sample.command(), cwd=sample.folder, capture_output=True, text=True, timeout=60, check=False,
                          env={**env, "NIXA_ISSUER": https_nixa.url, "CLIENT_ID": "nobody", "CLIENT_SECRET": "x",
                               "APP_URL": f"http://127.0.0.1:{free_port()}"})
    assert done.returncode != 0
    assert "certificate" in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
