"""The authenticator app and recovery in a real browser: enrol the app on the account page
(reached through the registry: details, then the code to the phone on record), then sign in at
a portal at substantial with the NIXA password plus a code from the app; a recovery code instead
of the app, then "Lost your device?" back through the registry to reset; wrong codes until the
page says to wait, in minutes. The codes are computed with pyotp from the secret the page shows,
as the person's app would. Every page is saved as a screenshot under the test artefacts."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pyotp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import artifacts_dir, assert_accessible, demo_portals, gone, main_says
from tests.browser.test_citizen_journey import _allow_consent, _citizen
from tests.connectors.telecom.outbox import latest_code


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live) as out:
        yield out


@pytest.fixture(scope="module")
def account_client(live) -> Iterator[None]:  # noqa: ANN001
    """The account area's client `nixa-account` is registered once per database, by the first NIXA
    that needs it; this run's other NIXA (issuer http://testserver) may have registered it with its
    own callback. The journeys sign in to the account page of the live NIXA: its callback, for
    this module, then the registration as it was."""
    from idp.account import signin
    from idp.store.models import Client

    signin.ensure_client(live.nixa)
    with live.nixa.db.session() as s:
        row = s.get(Client, signin.ACCOUNT_CLIENT_ID)
        before = dict(row.metadata_)
        row.metadata_ = {**before, "redirect_uris": [signin.callback_url(live.nixa)]}
    live.nixa.clients.invalidate(signin.ACCOUNT_CLIENT_ID)
    yield
    with live.nixa.db.session() as s:
        s.get(Client, signin.ACCOUNT_CLIENT_ID).metadata_ = before
    live.nixa.clients.invalidate(signin.ACCOUNT_CLIENT_ID)


class Journey:
    """One person's browser journey: its waits, and a numbered screenshot of each page."""

    def __init__(self, driver, name: str, live, registry: dict) -> None:  # noqa: ANN001
        self.driver, self.live, self.registry = driver, live, registry
        self.wait = WebDriverWait(driver, 20)
        self.folder = artifacts_dir(name)
        self.shots = 0
        self.pin, self.name, self.born, self.phone = _citizen(registry["db"])  # never one another test signed in
        self.username, self.password = f"totp-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
        self.secret = ""
        driver.delete_all_cookies()

    def shot(self, what: str, *, accessible: bool = True) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(self.folder / f"{self.shots:02d}.png"))
        if accessible:
            assert_accessible(self.driver, what)

    def by_id(self, element_id: str):  # noqa: ANN201
        return self.wait.until(ec.presence_of_element_located((By.ID, element_id)))

    def submit(self, element) -> None:  # noqa: ANN001
        """Submit a form and wait for the page it leads to (not the one it was sent from)."""
        page = self.driver.find_element(By.TAG_NAME, "main")
        element.submit()
        self.wait.until(gone(page))

    def registry_sign_in(self) -> None:
        """The chooser's registry method: the details identify the record, the code goes to its phone."""
        self.by_id("population-challenge-pin").send_keys(self.pin)
        self.driver.find_element(By.ID, "population-challenge-full_name").send_keys(self.name)
        year, month, day = self.born.split("-")
        self.driver.find_element(By.ID, "population-challenge-date_of_birth-day").send_keys(day)
        self.driver.find_element(By.ID, "population-challenge-date_of_birth-month").send_keys(month)
        self.shot("the registry check")
        self.driver.find_element(By.ID, "population-challenge-date_of_birth-year").send_keys(year + Keys.ENTER)
        code = self.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name='otp']")))
        code.send_keys(latest_code(self.registry["sms"].base_url, self.phone))
        self.shot("the SMS code")
        self.submit(code)

    def enrol(self) -> None:
        """The account page (substantial, through the registry), then the app: QR code, first code.
        The person then gets a NIXA password (as `nixa accounts add` would give one)."""
        self.driver.get(self.live.url + "/account")
        self.registry_sign_in()
        section = self.by_id("second-factors")
        self.shot("the account page")
        self.submit(section.find_element(By.CSS_SELECTOR, "form[action='/account/totp/start'] button"))
        assert self.by_id("second-factors").find_element(By.CSS_SELECTOR, "svg.qr")
        self.secret = self.by_id("totp-secret").text.replace(" ", "")
        self.shot("the QR code and the key to type")
        field = self.by_id("totp-confirm-code")
        field.send_keys(pyotp.TOTP(self.secret).now())
        self.submit(field)
        assert self.by_id("totp-active")
        self.shot("the app is on")
        self.live.nixa.people.add_local_account(self.username, self.password, national_id=self.pin)

    def password_at(self, portal: dict) -> None:
        """A new browser at the portal, asking for substantial: the NIXA password, step one."""
        self.driver.delete_all_cookies()
        self.driver.get(portal["url"] + "/")
        self.driver.find_element(By.CSS_SELECTOR, "#acr option[value='urn:nixa:loa:substantial']").click()
        self.driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#method-local summary"))).click()
        self.wait.until(ec.visibility_of_element_located((By.ID, "local-username"))).send_keys(self.username)
        self.driver.find_element(By.ID, "local-password").send_keys(self.password)
        self.shot("the password, step one")
        self.submit(self.driver.find_element(By.ID, "local-password"))
        assert self.by_id("method-totp").get_attribute("open") is not None  # the second step, open
        self.shot("the second step")

    def code(self, offset: float) -> str:
        return pyotp.TOTP(self.secret).at(time.time() + offset)

    def signed_in_at_substantial(self, portal: dict) -> None:
        _allow_consent(self.driver, self.wait)
        self.wait.until(main_says(f"Xin chào, {self.name}"))
        assert self.driver.current_url == portal["url"] + "/"
        assert "Đáng kể" in self.driver.find_element(By.TAG_NAME, "main").text
        self.shot("signed in at the portal", accessible=False)  # the portal's page is not NIXA's


def test_enrol_the_app_then_password_and_app_at_a_portal(chromium, registry, portals, account_client, live) -> None:  # noqa: ANN001
    journey = Journey(chromium, "test_enrol_the_app_then_password_and_app_at_a_portal", live, registry)
    journey.enrol()
    journey.password_at(portals["services"])
    field = journey.by_id("totp-code")
    field.send_keys(journey.code(+30))  # the enrolment spent this time step's code: the next one (one step of skew)
    journey.submit(field)
    journey.signed_in_at_substantial(portals["services"])


def test_a_recovery_code_then_lost_device_back_through_the_registry(chromium, registry, portals, account_client, live) -> None:  # noqa: ANN001
    journey = Journey(chromium, "test_a_recovery_code_then_lost_device_back_through_the_registry", live, registry)
    journey.enrol()
    journey.submit(journey.by_id("second-factors").find_element(By.CSS_SELECTOR, "form[action='/account/recovery-codes'] button"))
    codes = [c.text for c in journey.by_id("recovery-codes").find_elements(By.TAG_NAME, "code")]
    assert len(codes) == 10
    journey.shot("the recovery codes, shown once")

    journey.password_at(portals["services"])
    chromium.find_element(By.CSS_SELECTOR, "#method-recovery-code summary").click()
    field = journey.wait.until(ec.visibility_of_element_located((By.ID, "recovery-code-code")))
    field.send_keys(codes[0])
    journey.shot("a recovery code instead of the app")
    journey.submit(field)
    journey.signed_in_at_substantial(portals["services"])

    # every factor lost: "Mất thiết bị?" on the second step, a re-proof through the registry, the reset
    journey.password_at(portals["tax"])
    link = chromium.find_element(By.CSS_SELECTOR, "#method-totp a[href='/account/recover']")
    assert link.text == "Mất thiết bị?"
    link.click()
    journey.registry_sign_in()
    section = journey.by_id("second-factors")
    assert chromium.current_url.endswith("/account?notice=recover#second-factors")
    journey.shot("back on the account page to reset")
    journey.submit(section.find_element(By.CSS_SELECTOR, "form[action='/account/second-factors/reset'] button"))
    section = journey.by_id("second-factors")
    assert section.find_elements(By.CSS_SELECTOR, "form[action='/account/totp/start']")  # ready to enrol again
    assert "0" in journey.by_id("recovery-codes-left").text
    journey.shot("every factor reset")


def test_wrong_codes_until_the_page_says_to_wait(chromium, registry, portals, account_client, live) -> None:  # noqa: ANN001
    journey = Journey(chromium, "test_wrong_codes_until_the_page_says_to_wait", live, registry)
    journey.enrol()
    journey.password_at(portals["services"])
    right = journey.code(+30)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for attempt in range(1, 13):
        field = journey.by_id("totp-code")
        field.send_keys(wrong)
        journey.submit(field)
        error = journey.by_id("login-error").text
        if "phút" in error:
            break
        assert "Mã không đúng" in error
    assert attempt == 11, attempt  # the tenth wrong code was the last one checked
    journey.shot("too many wrong codes: wait, in minutes")
    field = journey.by_id("totp-code")
    field.send_keys(right)
    journey.submit(field)
    assert "phút" in journey.by_id("login-error").text  # even the right code waits for the lock to end
    journey.shot("the right code waits too")
