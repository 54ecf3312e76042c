"""Signing in and out is usable on a 320 px wide phone (the narrowest still sold):
nothing wider than the screen, so no sideways scrolling; every control within reach. Checked in
headless Chromium emulating a 320 × 640 mobile viewport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import assert_accessible, assert_fits, demo_portals, main_says, phone_screen
from tests.conftest import make_citizen


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live) as out:
        yield out


def test_sign_in_and_out_fit_a_320_px_phone(chromium, portals, live) -> None:  # noqa: ANN001
    """The account pages are checked at this width in the citizen's journey (they need substantial)."""
    citizen = make_citizen(live.nixa, name="Nguyễn Thị Ánh Nguyệt")
    wait = WebDriverWait(chromium, 20)
    chromium.delete_all_cookies()
    with phone_screen(chromium):
        _journey(chromium, wait, portals, live, citizen)


def _journey(phone, wait: WebDriverWait, portals: dict, live, citizen) -> None:  # noqa: ANN001

    phone.get(live.url + "/")
    assert_fits(phone, "NIXA's home page")
    assert_accessible(phone, "NIXA's home page")
    phone.get(live.url + "/no-such-page")
    assert_fits(phone, "the 404 page")
    assert_accessible(phone, "the 404 page")

    phone.get(portals["services"]["url"] + "/")
    assert_fits(phone, "the portal before sign-in")
    assert_accessible(phone, "the portal before sign-in (an agency app)")
    phone.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "local-username")))
    assert_fits(phone, "the sign-in page")
    assert_accessible(phone, "the sign-in page")
    phone.find_element(By.ID, "local-username").send_keys(citizen.username)
    phone.find_element(By.ID, "local-password").send_keys(citizen.password + Keys.ENTER)
    allow = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[value='allow']")))
    assert_fits(phone, "the consent page")
    assert_accessible(phone, "the consent page")
    allow.click()
    wait.until(main_says("Xin chào"))
    assert_fits(phone, "the portal after sign-in")
    assert_accessible(phone, "the portal after sign-in (an agency app)")

    phone.get(live.url + "/logout")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "button[value='yes']")))
    assert_fits(phone, "the sign-out page")
    assert_accessible(phone, "the sign-out page")
    phone.find_element(By.CSS_SELECTOR, "button[value='yes']").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p[role='status']")))
    assert_fits(phone, "the signed-out page")
    assert_accessible(phone, "the signed-out page")
