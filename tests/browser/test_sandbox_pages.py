"""The sandbox's developer pages in a real browser (demo mode): axe-core finds no serious or
critical violation on the persona list, the client list and a client's inspector page, in
Vietnamese and in English; the persona list is reachable by keyboard from the skip link."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import assert_accessible
from tests.conftest import LiveServer, free_port, make_settings, register_client


@pytest.fixture(scope="module")
def demo_live(var_dir, database_url, master_key) -> Iterator[LiveServer]:  # noqa: ANN001
    from idp.app import Nixa, create_app

    port = free_port()
    settings = make_settings(var_dir, database_url, master_key, issuer=f"http://127.0.0.1:{port}", demo=True)
    nixa = Nixa(settings)
    server = LiveServer(create_app(settings, nixa=nixa), port).start()
    server.nixa = nixa
    yield server
    server.stop()
    nixa.audit.close()


def test_the_sandbox_pages_are_accessible(chromium, demo_live) -> None:  # noqa: ANN001
    import httpx

    client = register_client(demo_live.nixa)
    httpx.post(demo_live.url + "/token", data={"grant_type": "authorization_code", "code": "nope"}, auth=(client.client_id, "wrong"))
    wait = WebDriverWait(chromium, 20)
    for path, what in (("/sandbox/personas", "the persona list"), ("/sandbox/personas?lang=en", "the persona list in English"),
                       ("/sandbox/clients", "the client list"), (f"/sandbox/clients/{client.client_id}", "a client's inspector page")):
        chromium.get(demo_live.url + path)
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert_accessible(chromium, what)
    assert "token.failed" in chromium.find_element(By.TAG_NAME, "main").text

    chromium.get(demo_live.url + "/sandbox/personas")
    wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    chromium.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert chromium.switch_to.active_element.get_attribute("class") == "skip"
    chromium.switch_to.active_element.send_keys(Keys.ENTER)
    link = chromium.find_element(By.CSS_SELECTOR, "a[href='#binh-deceased']")
    link.send_keys(Keys.ENTER)
    assert chromium.current_url.endswith("#binh-deceased")
