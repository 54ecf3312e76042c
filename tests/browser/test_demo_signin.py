"""A real browser (headless Chromium driven through chromedriver) signs in on the demo portal
through NIXA's pages with the keyboard, sees the verified claims, and signs out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from idp.demo.rp import create_rp
from tests.browser.conftest import assert_accessible
from tests.conftest import LiveServer, free_port, make_citizen, register_client


@pytest.fixture(scope="module")
def portal(live) -> Iterator[dict]:  # noqa: ANN001
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = register_client(live.nixa, redirect_uri=f"{base}/callback", post_logout_redirect_uris=[f"{base}/"])
    server = LiveServer(create_rp(live.url, client.client_id, client.secret, base), port).start()
    yield {"url": base, "client": client}
    server.stop()


def test_keyboard_sign_in_and_out_on_the_demo_portal(chromium, portal, live) -> None:  # noqa: ANN001
    citizen = make_citizen(live.nixa, name="Trần Văn Khoa")
    wait = WebDriverWait(chromium, 20)
    chromium.get(portal["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()

    # NIXA's sign-in page: Vietnamese first, every field labelled, usable without a mouse
    wait.until(ec.presence_of_element_located((By.ID, "local-username")))
    assert chromium.current_url.startswith(live.url + "/interaction/")
    assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Đăng nhập"
    for field in chromium.find_elements(By.CSS_SELECTOR, "main input:not([type=hidden])"):
        labels = chromium.find_elements(By.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert labels and labels[0].text.strip(), f"input {field.get_attribute('id')} has no label"
    assert_accessible(chromium, "the sign-in page")
    body = chromium.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert chromium.switch_to.active_element.get_attribute("class") == "skip"  # first Tab: skip link

    chromium.find_element(By.ID, "local-username").send_keys(citizen.username)
    chromium.find_element(By.ID, "local-password").send_keys(citizen.password + Keys.ENTER)

    # consent, then back at the portal with the verified claims
    allow = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[value='allow']")))
    assert "Cổng thử nghiệm" in chromium.page_source
    assert_accessible(chromium, "the consent page")
    allow.send_keys(Keys.ENTER)
    wait.until(ec.url_to_be(portal["url"] + "/"))
    page = chromium.find_element(By.TAG_NAME, "main").text
    assert "Xin chào, Trần Văn Khoa" in page and "Thấp · Low" in page
    assert "Hồ sơ của bạn" in page  # an agency portal, not a token dump
    chromium.find_element(By.CSS_SELECTOR, "a[href='/dev']").click()  # the developer view
    page = wait.until(ec.presence_of_element_located((By.TAG_NAME, "pre"))) and chromium.find_element(By.TAG_NAME, "main").text
    assert '"acr": "urn:nixa:loa:low"' in page and f'"iss": "{live.url}"' in page
    chromium.get(portal["url"] + "/")

    # single logout back to the portal; the NIXA session is gone
    chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait.until(ec.url_contains("/?state="))  # the signed-in page has a /login (step-up) form too: wait for the URL
    assert chromium.current_url.startswith(portal["url"] + "/?state=")  # state echoed (RP-Initiated Logout §3)
    assert not chromium.find_elements(By.CSS_SELECTOR, "form[action='/logout']")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "local-username")))  # asked to sign in again
