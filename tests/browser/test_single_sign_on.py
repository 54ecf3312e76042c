"""A real browser across the two demo portals (public services and e-tax, separate clients on
separate ports): sign in on one, the other signs the citizen in without a prompt; sign out on the
second, and back-channel logout signs the first one out too, and NIXA's own session is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import assert_accessible, demo_portals, main_says
from tests.conftest import make_citizen


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live, nixa_first_party=True) as out:
        yield out


def _signed_in_text(driver, url: str, wait: WebDriverWait) -> str:  # noqa: ANN001
    driver.get(url + "/")
    return wait.until(ec.presence_of_element_located((By.TAG_NAME, "main"))).text


def test_sign_in_once_sign_out_once_across_two_portals(chromium, portals, live) -> None:  # noqa: ANN001
    citizen = make_citizen(live.nixa, name="Lê Thị Hoa")
    wait = WebDriverWait(chromium, 20)
    chromium.delete_all_cookies()

    # 1. sign in on the public-service portal
    chromium.get(portals["services"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "local-username"))).send_keys(citizen.username)
    assert_accessible(chromium, "the sign-in page")
    chromium.find_element(By.ID, "local-password").send_keys(citizen.password + Keys.ENTER)
    wait.until(ec.url_to_be(portals["services"]["url"] + "/"))
    assert "Xin chào, Lê Thị Hoa" in chromium.find_element(By.TAG_NAME, "main").text

    # 2. the e-tax portal: one click, no NIXA page in between (single sign-on)
    chromium.get(portals["tax"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    # the URL is the same before and after the round trip: wait for the signed-in page itself
    wait.until(main_says("Xin chào, Lê Thị Hoa"))
    assert chromium.current_url == portals["tax"]["url"] + "/"
    text = chromium.find_element(By.TAG_NAME, "main").text
    assert "Xin chào, Lê Thị Hoa" in text and "Nghĩa vụ thuế" in text

    # 3. sign out on e-tax: NIXA ends its session and tells both portals (back-channel logout)
    chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait.until(ec.url_contains("/?state="))  # back from NIXA's logout (the signed-in page has a /login form too)
    assert chromium.current_url.startswith(portals["tax"]["url"] + "/?state=")
    assert not chromium.find_elements(By.CSS_SELECTOR, "form[action='/logout']")
    deadline = time.time() + 30
    while "Xin chào" in _signed_in_text(chromium, portals["services"]["url"], wait):
        assert time.time() < deadline, "the public-service portal was never told of the logout"
        time.sleep(0.5)
    assert chromium.find_elements(By.CSS_SELECTOR, "form[action='/login']")  # signed out there too

    # 4. and at NIXA: signing in again asks who is there
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "local-username")))
