"""Headless Chromium (Debian's chromium + chromium-driver, which `make test` installs), one per
test module, and the checks every page of a journey goes through: it fits a small phone, and
axe-core finds no serious or critical accessibility violation on it."""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.conftest import BACKEND
from tests.connectors.sandboxes import running_sandbox

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "tests/browser/axe/node_modules/axe-core/axe.min.js"


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    for binary in ("chromium", "chromedriver"):
        assert shutil.which(binary), f"{binary} is missing: `make test` installs Debian's chromium and chromium-driver"
    profile = tempfile.mkdtemp(prefix="nixa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--lang=vi", "--window-size=1000,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def demo_portals(live, **client_metadata) -> Iterator[dict]:  # noqa: ANN001
    """The two demo portals (public services, e-tax), each its own client on its own port, with
    back-channel logout; `client_metadata` is added to both registrations. Each entry has the
    portal's `url`, `client`, and its `app`, `port` and `server` (to stop and start it again)."""
    from idp.demo.rp import E_TAX, PUBLIC_SERVICES, create_rp
    from tests.conftest import LiveServer, free_port, register_client

    out, servers = {}, []
    try:
        for name, look in (("services", PUBLIC_SERVICES), ("tax", E_TAX)):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            client = register_client(live.nixa, redirect_uri=f"{base}/callback", post_logout_redirect_uris=[f"{base}/"],
                                     client_name=look.name_vi, backchannel_logout_uri=f"{base}/backchannel-logout",
                                     backchannel_logout_session_required=True, **client_metadata)
            app = create_rp(live.url, client.client_id, client.secret, base, look)
            servers.append(LiveServer(app, port).start())
            out[name] = {"url": base, "client": client, "app": app, "port": port, "server": servers[-1]}
        yield out
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def registry(live, tmp_path_factory) -> Iterator[dict]:  # noqa: ANN001
    """The citizens' sources on the live NIXA: the population registry (its sandbox with 50
    generated citizens in `db`) whose code goes by SMS through the telecom sandbox (`sms`)."""
    keys = {"registry": secrets.token_urlsafe(16), "sms": secrets.token_urlsafe(16)}
    work = tmp_path_factory.mktemp("journey")
    with (
        running_sandbox("connectors.population.sandbox", f"--api-key={keys['registry']}", "--db", str(work / "registry.db"),
                        "--generate", "50") as reg,
        running_sandbox("connectors.telecom.sandbox", f"--api-key={keys['sms']}") as sms,
    ):
        connectors = live.nixa.connectors
        connectors.upsert("population", "population", {"base_url": reg.base_url, "api_key": keys["registry"], "otp_connector": "telecom",
                                                       "challenge_loa": "substantial"}, loa="low", display_name_vi="Dân cư",
                          display_name_en="Registry")
        connectors.upsert("telecom", "telecom_sms", {"base_url": sms.base_url, "api_key": keys["sms"], "resend_after": 0}, loa="low",
                          display_name_vi="SMS", display_name_en="SMS")
        connectors._refresh(force=True)
        try:
            yield {"db": work / "registry.db", "sms": sms}
        finally:
            disable_connectors(live, "population", "telecom")


def disable_connectors(live, *connector_ids: str) -> None:  # noqa: ANN001
    """Leave the shared live NIXA as the other modules expect it: without this module's sources."""
    connectors = live.nixa.connectors
    for cid in connector_ids:
        entry = connectors.entry(cid)
        if entry:
            connectors.upsert(cid, entry.type, entry.config, loa=int(entry.loa), enabled=False)
    connectors._refresh(force=True)


PHONE_WIDTH = 320  # the narrowest phone screen still sold: every page must work at this width


@contextmanager
def phone_screen(driver, width: int = PHONE_WIDTH, height: int = 640) -> Iterator[None]:  # noqa: ANN001
    """Emulate a `width` × `height` mobile viewport for the pages opened inside the block."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def assert_fits(driver, what: str, width: int = PHONE_WIDTH) -> None:  # noqa: ANN001
    """No horizontal overflow, and every visible control lies within the screen's width (the
    skip link waits off-screen until it has the focus); a wide table scrolls inside its own
    region, which must itself fit and be reachable from the keyboard."""
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width, f"{what}: the page is {scroll} px wide on a {width} px screen"
    outside = driver.execute_script("""
        return [...document.querySelectorAll('input:not([type=hidden]), button, select, a:not(.skip), textarea')]
          .filter(e => e.offsetParent !== null)
          .map(e => [e.outerHTML.slice(0, 80), (e.closest('.table-scroll[tabindex="0"]') || e).getBoundingClientRect()])
          .filter(([_, r]) => r.left < 0 || r.right > arguments[0] + 0.5)
          .map(([h]) => h);""", width)
    assert not outside, f"{what}: controls off the screen: {outside}"


# WCAG 2.1 levels A and AA, and axe's best practices (landmarks, one h1, heading order...).
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("critical", "serious")
IMPACTS = ("critical", "serious", "moderate", "minor")
_AXE_RESULTS: dict[str, list[dict]] = {}


def artifacts_dir(kind: str) -> Path:
    """Where the tests leave what a person looks at afterwards (NIXA_TEST_ARTIFACTS, by default
    var/test-artifacts, git-ignored), one folder per `kind`."""
    folder = Path(os.environ.get("NIXA_TEST_ARTIFACTS") or ROOT / "var" / "test-artifacts") / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@functools.cache
def _axe_source() -> str:
    assert AXE_JS.is_file(), f"{AXE_JS.relative_to(ROOT)} is missing: scripts/bootstrap.sh installs axe-core"
    return AXE_JS.read_text(encoding="utf-8")


def _run_axe(driver) -> list[dict]:  # noqa: ANN001
    """axe-core's violations on the page in `driver`: rule id, impact, help, and each failing
    element's selector with axe's summary of what is wrong with it."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(_axe_source())
    driver.set_script_timeout(60)
    result = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: arguments[0], resultTypes: ["violations"]})
          .then(r => done({violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                   nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}))}))
          .catch(e => done({error: String(e)}));""", AXE_RULES)
    assert "error" not in result, f"axe-core failed: {result['error']}"
    return result["violations"]


def assert_accessible(driver, what: str) -> None:  # noqa: ANN001
    """axe-core (WCAG 2.1 A/AA and best practices) finds no serious or critical violation on the
    page in `driver`. Every page checked, with its violations of every impact, goes into the
    JSON report axe/<test>.json under the test artefacts."""
    violations = _run_axe(driver)
    test = os.environ.get("PYTEST_CURRENT_TEST", "unknown::unknown").split("::")[-1].split(" ")[0]
    counts = Counter(v["impact"] for v in violations)
    pages = _AXE_RESULTS.setdefault(test, [])
    pages.append({"page": what, "url": driver.current_url, "violations": {impact: counts.get(impact, 0) for impact in IMPACTS},
                  "details": violations})
    report = {"test": test, "backend": BACKEND, "rules": AXE_RULES, "pages": pages}
    (artifacts_dir("axe") / f"{test}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{what}: accessibility violations (axe-core) at {driver.current_url}:\n" + "\n".join(
        f"- [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})\n    " + "\n    ".join(n["target"] for n in v["nodes"])
        for v in blocking)


# ---- waiting across a navigation ------------------------------------------------------------
# Asked about an element while the next document is being committed, Chromium may answer with an
# "unknown error" that the node "does not belong to the document" rather than a stale-element
# error. Both mean the page was replaced; the waits below take them so.


def _replaced(exc: WebDriverException) -> bool:
    return isinstance(exc, StaleElementReferenceException) or "does not belong to the document" in (exc.msg or "")


def gone(element):  # noqa: ANN001, ANN201
    """Wait condition: the page `element` was on has been replaced."""
    def check(_driver) -> bool:  # noqa: ANN001
        try:
            element.is_enabled()
        except WebDriverException as exc:
            if _replaced(exc):
                return True
            raise
        return False

    return check


def main_says(text: str):  # noqa: ANN201
    """Wait condition: the page's <main> contains `text` (asked again while pages are replaced)."""
    def check(driver) -> bool:  # noqa: ANN001
        try:
            return text in driver.find_element(By.TAG_NAME, "main").text
        except WebDriverException as exc:
            if _replaced(exc) or "no such element" in (exc.msg or "").lower():
                return False
            raise

    return check
