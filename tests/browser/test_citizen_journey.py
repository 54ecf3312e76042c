"""A citizen's whole journey in a real browser: sign in at substantial on the public-service
portal through the registry (details identify the record, the code goes to its phone on record),
consent; the e-tax portal signs them in without a prompt (consent aside); NIXA's account page then
lists both apps' consents and the access-log rows that journey produced; revoking the e-tax
consent removes it; the data export holds all of it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from idp.demo.rp import E_TAX, PUBLIC_SERVICES
from tests.browser.conftest import assert_accessible, assert_fits, demo_portals, gone, main_says, phone_screen
from tests.connectors.telecom.outbox import latest_code
from tests.login.support import unused_registry_citizen


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live) as out:
        yield out


def _citizen(db) -> tuple[str, str, str, str]:  # noqa: ANN001
    return unused_registry_citizen(db)


def _allow_consent(driver, wait: WebDriverWait) -> None:  # noqa: ANN001
    allow = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[value='allow']")))
    assert_accessible(driver, "the consent page")
    allow.click()


def test_journey_across_two_portals_then_the_account_page(chromium, registry, portals, live) -> None:  # noqa: ANN001
    pin, name, born, phone = _citizen(registry["db"])
    wait = WebDriverWait(chromium, 20)
    chromium.delete_all_cookies()

    # 1. the public-service portal at substantial: the registry finds the record, the code goes to its phone
    chromium.get(portals["services"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "#acr option[value='urn:nixa:loa:substantial']").click()
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "population-challenge-pin"))).send_keys(pin)
    assert_accessible(chromium, "the sign-in page at substantial")
    chromium.find_element(By.ID, "population-challenge-full_name").send_keys(name)
    year, month, day = born.split("-")  # typed as a person reads it on the card: day, month, year
    chromium.find_element(By.ID, "population-challenge-date_of_birth-day").send_keys(day)
    chromium.find_element(By.ID, "population-challenge-date_of_birth-month").send_keys(month)
    chromium.find_element(By.ID, "population-challenge-date_of_birth-year").send_keys(year + Keys.ENTER)
    code_field = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name='otp']")))
    assert_accessible(chromium, "the SMS code page")
    code_field.send_keys(latest_code(registry["sms"].base_url, phone))
    code_field.submit()
    _allow_consent(chromium, wait)
    wait.until(main_says(f"Xin chào, {name}"))
    assert chromium.current_url == portals["services"]["url"] + "/"
    assert "Đáng kể" in chromium.find_element(By.TAG_NAME, "main").text

    # 2. the e-tax portal: no sign-in page, only its own consent
    chromium.get(portals["tax"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _allow_consent(chromium, wait)
    wait.until(main_says(f"Xin chào, {name}"))
    assert chromium.current_url == portals["tax"]["url"] + "/"

    # the e-tax portal keeps access (offline_access): its refresh token works
    chromium.find_element(By.CSS_SELECTOR, "form[action='/refresh'] button").click()
    wait.until(main_says(f"Xin chào, {name}"))
    assert not chromium.find_elements(By.ID, "refresh-refused")

    # 3. the account page: the session with both portals in it, both consents; revoke e-tax's
    chromium.get(live.url + "/account")
    consents = wait.until(ec.presence_of_element_located((By.ID, "consents"))).text
    assert PUBLIC_SERVICES.name_vi in consents and E_TAX.name_vi in consents
    assert_accessible(chromium, "the account page")
    [current] = chromium.find_elements(By.CSS_SELECTOR, "#sessions tr.current")
    apps = current.find_element(By.CSS_SELECTOR, ".session-apps").text
    assert PUBLIC_SERVICES.name_vi in apps and E_TAX.name_vi in apps, apps
    tax_id = portals["tax"]["client"].client_id
    before = chromium.find_element(By.ID, "consents")
    chromium.find_element(By.CSS_SELECTOR, f"#consents form input[name='client_id'][value='{tax_id}']").submit()
    wait.until(gone(before))  # the page after the POST, not the one it was sent from
    consents = wait.until(ec.presence_of_element_located((By.ID, "consents"))).text
    assert PUBLIC_SERVICES.name_vi in consents and E_TAX.name_vi not in consents
    assert_accessible(chromium, "the account page after a revocation")

    # revoking the consent revoked e-tax's refresh token at once: the portal is refused and signs out
    chromium.get(portals["tax"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/refresh'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "refresh-refused")))  # shown only when NIXA refused the refresh token
    chromium.get(portals["tax"]["url"] + "/")
    assert chromium.find_elements(By.CSS_SELECTOR, "form[action='/login']")

    # 4. the access log shows what each portal received during this journey
    chromium.get(live.url + "/account/access-log")
    log = wait.until(ec.presence_of_element_located((By.TAG_NAME, "main"))).text
    assert PUBLIC_SERVICES.name_vi in log and E_TAX.name_vi in log
    assert_accessible(chromium, "the access log")

    # the account pages work on a 320 px phone
    with phone_screen(chromium):
        chromium.get(live.url + "/account")
        wait.until(ec.presence_of_element_located((By.ID, "sessions")))
        assert_fits(chromium, "the account page")
        assert_accessible(chromium, "the account page on a phone")
        chromium.get(live.url + "/account/access-log")
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "main")))
        assert_fits(chromium, "the access log")
        assert_accessible(chromium, "the access log on a phone")

    # 5. the export, fetched with this browser's cookies, holds the journey
    cookies = {c["name"]: c["value"] for c in chromium.get_cookies()}
    export = httpx.get(live.url + "/account/export.json", cookies=cookies, timeout=10)
    assert export.status_code == 200, export.text[:300]
    data = export.json()
    released_to = {row.get("client_id") for row in data["access_log"]}
    assert {portals["services"]["client"].client_id, tax_id} <= released_to
    assert [c["client_id"] for c in data["consents"]] == [portals["services"]["client"].client_id]
    assert "password_hash" not in export.text and "connector_data" not in export.text
