"""The sample apps of examples/ as real processes against the live test NIXA, a person's browser
(httpx with a cookie jar, following every redirect and filling NIXA's forms), and the sources
that sign people in at each level: a NIXA account (low), the registry + SMS code (substantial),
a digital-signature certificate (high)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.browser.conftest import disable_connectors
from tests.conftest import free_port
from tests.connectors.sandboxes import running_sandbox
from tests.interop.conftest import ensure_node_modules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Sample:
    """How to start one sample app: its folder and its command."""

    name: str
    folder: Path

    def command(self) -> list[str]:
        if self.name == "node-openid-client":
            node = shutil.which("node")
            assert node, "node is required for examples/node-openid-client (scripts/bootstrap.sh installs it)"
            return [node, "app.mjs"]
        return [sys.executable, "app.py"]

    def client_metadata(self, app_url: str) -> list[dict]:
        """The example's own client.json, its addresses moved to `app_url` (the test's free port)."""
        text = (self.folder / "client.json").read_text(encoding="utf-8")
        registered = json.loads(text)[0]["redirect_uris"][0].removesuffix("/callback")
        return json.loads(text.replace(registered, app_url))


SAMPLES = {name: Sample(name, EXAMPLES / name) for name in ("python-authlib", "node-openid-client")}


class SampleApp:
    """One sample app process, started the way its README says, on a free loopback port."""

    def __init__(self, sample: Sample, issuer: str, client_id: str, secret: str, url: str, env: dict[str, str] | None = None) -> None:
        if sample.name == "node-openid-client":
            ensure_node_modules(sample.folder)
        self.sample, self.url = sample, url
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(sample.command(), cwd=sample.folder, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "NIXA_ISSUER": issuer, "CLIENT_ID": client_id, "CLIENT_SECRET": secret,
                                          "APP_URL": url, "NODE_NO_WARNINGS": "1", **(env or {})})
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"{sample.name} exited:\n{self.output()}"
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{sample.name} did not answer within 30 s:\n{self.output()}"
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


class Person:
    """A person's browser: follows every redirect (the app's and NIXA's), as a browser does. NIXA's
    relative form actions resolve against the issuer, so the sign-in helpers of tests/login work."""

    def __init__(self, issuer: str, verify: object = True) -> None:
        self.issuer = issuer
        self.http = httpx.Client(base_url=issuer, follow_redirects=False, timeout=20, verify=verify)
        self.page: httpx.Response | None = None

    def close(self) -> None:
        self.http.close()

    def follow(self, response: httpx.Response) -> httpx.Response:
        for _ in range(15):
            if response.status_code not in (301, 302, 303, 307):
                self.page = response
                return response
            response = self.http.get(urljoin(str(response.url), response.headers["location"]))
        raise AssertionError("too many redirects")

    def get(self, url: str) -> httpx.Response:
        return self.follow(self.http.get(url))

    def post(self, url: str, data: dict) -> httpx.Response:
        return self.follow(self.http.post(url, data=data))

    def submit(self, action_part: str, **fields: str) -> httpx.Response:
        """Send the form of the current page whose action contains `action_part`, with its hidden
        fields (csrf, the request handle) and `fields`."""
        assert self.page is not None
        for form in re.findall(r"<form\b.*?</form>", self.page.text, re.S):
            action = re.search(r'action="([^"]+)"', form)
            if action and action_part in action.group(1):
                hidden_fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
                return self.post(urljoin(str(self.page.url), unescape(action.group(1))), {**hidden_fields, **fields})
        raise AssertionError(f"no form posting to *{action_part}* on {self.page.url}: {self.page.text[:800]}")

    def consent(self) -> httpx.Response:
        """Allow the app on NIXA's consent page when it is shown (the first time per person)."""
        assert self.page is not None
        if 'name="decision"' in self.page.text and "/consent" in self.page.text:
            return self.submit("/consent", decision="allow")
        return self.page


def pre_json(page: httpx.Response, element_id: str) -> dict:
    """The JSON a sample app shows in <pre id=...> (the verified claims, UserInfo)."""
    match = re.search(rf"<pre id='{element_id}'>(.*?)</pre>", page.text, re.S)
    assert match, f"no {element_id} on {page.url}: {page.status_code} {page.text[:800]}"
    return json.loads(unescape(match.group(1)))


def shown_error(page: httpx.Response) -> str:
    """The OAuth error code a sample app shows on its error page."""
    match = re.search(r"<p role='alert' id='error'><code>([^<]*)</code>", page.text)
    assert match, f"no error shown on {page.url}: {page.status_code} {page.text[:800]}"
    return unescape(match.group(1))


@pytest.fixture(scope="module")
def sources(live, tmp_path_factory) -> Iterator[dict]:  # noqa: ANN001
    """The registry (its sandbox with generated citizens in `registry_db`), whose code goes by SMS
    through the operator sandbox (`sms`), and the CA (`pki`, its OCSP/CRL sandbox), as connectors
    of the live NIXA."""
    from connectors.certificate.pki import TestPKI

    keys = {"registry": secrets.token_urlsafe(16), "sms": secrets.token_urlsafe(16)}
    work = tmp_path_factory.mktemp("examples")
    ca_port = free_port()
    ca_url = f"http://127.0.0.1:{ca_port}"
    pki = TestPKI.init(work / "pki", ocsp_url=f"{ca_url}/ocsp", crl_url=f"{ca_url}/crl")
    with (
        running_sandbox("connectors.population.sandbox", f"--api-key={keys['registry']}", "--db", str(work / "registry.db"),
                        "--generate", "50") as registry,
        running_sandbox("connectors.telecom.sandbox", f"--api-key={keys['sms']}") as sms,
        running_sandbox("connectors.certificate.sandbox", "--pki", str(work / "pki"), port=ca_port),
    ):
        connectors = live.nixa.connectors
        connectors.upsert("population", "population", {"base_url": registry.base_url, "api_key": keys["registry"],
                                                       "otp_connector": "telecom", "challenge_loa": "substantial"},
                          loa="low", display_name_vi="Dân cư", display_name_en="Registry")
        connectors.upsert("telecom", "telecom_sms", {"base_url": sms.base_url, "api_key": keys["sms"], "resend_after": 0}, loa="low",
                          display_name_vi="SMS", display_name_en="SMS")
        connectors.upsert("certificate", "certificate", {"trust_anchors": [str(pki.trust_anchor_path)],
                                                         "intermediate_certs": [str(pki.dir / "ca.pem")]},
                          loa="high", display_name_vi="Chứng thư số", display_name_en="Certificate")
        connectors._refresh(force=True)
        try:
            yield {"registry_db": work / "registry.db", "sms": sms, "pki": pki}
        finally:
            disable_connectors(live, "population", "telecom", "certificate")
