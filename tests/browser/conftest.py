"""Headless Chromium (Debian's chromium + chromium-driver, which `make test` installs), one per
test module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


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


PHONE_WIDTH = 320  # the narrowest phone screen still sold: every page must work at this width


@contextmanager
def phone_screen(driver, width: int = PHONE_WIDTH) -> Iterator[None]:  # noqa: ANN001
    """Emulate a `width` × 640 mobile viewport for the pages opened inside the block."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": 640, "deviceScaleFactor": 2, "mobile": True})
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
