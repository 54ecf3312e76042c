"""Passkeys in a real browser, with Chromium's virtual authenticator (CDP WebAuthn domain) as the
citizen's device: register one on the account page after a substantial sign-in (at a portal,
through the registry), then sign in usernameless at another portal; and step up an SMS (low)
session to substantial with the passkey, inside one SSO session. A screenshot of each page lands
in the test artefacts.

WebAuthn refuses an IP address as RP ID, so this module's NIXA is served as http://localhost
(a secure context, like https) instead of the shared worker on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from connectors.base import Assertion, LevelOfAssurance
from idp.identity.people import Provenance
from idp.store.models import Person, WebAuthnCredential
from tests.browser.conftest import artifacts_dir, demo_portals, main_says
from tests.browser.test_citizen_journey import _citizen
from tests.conftest import LiveServer, free_port, make_settings
from tests.connectors.telecom.outbox import latest_code


@pytest.fixture(scope="module")
def live(var_dir, database_url, master_key) -> Iterator[LiveServer]:  # noqa: ANN001
    """A NIXA worker whose issuer is http://localhost:PORT (overrides the shared `live` here, so
    the `registry` fixture configures this one)."""
    from idp.app import Nixa, create_app

    port = free_port()
    settings = make_settings(var_dir, database_url, master_key, issuer=f"http://localhost:{port}")
    nixa = Nixa(settings)
    server = LiveServer(create_app(settings, nixa=nixa), port).start()
    server.nixa, server.url = nixa, settings.issuer
    yield server
    server.stop()


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live) as out:
        yield out


@pytest.fixture()
def device(chromium) -> Iterator[str]:  # noqa: ANN001
    """A platform authenticator with user verification (a phone's fingerprint reader)."""
    chromium.execute_cdp_cmd("WebAuthn.enable", {})
    made = chromium.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True}})
    yield made["authenticatorId"]
    chromium.execute_cdp_cmd("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": made["authenticatorId"]})


class Screenshots:
    """NN-page.png for each page of the journey, in the test's artefact folder."""

    def __init__(self, driver, test: str) -> None:  # noqa: ANN001
        self.driver, self.folder, self.n = driver, artifacts_dir(test), 0

    def __call__(self, page: str) -> None:
        self.n += 1
        self.driver.save_screenshot(str(self.folder / f"{self.n:02d}-{page}.png"))


def _fresh_browser(chromium, *origins: str) -> None:  # noqa: ANN001
    """Forget the cookies of NIXA and the portals (no session anywhere); the authenticator keeps
    its passkeys."""
    for origin in origins:
        chromium.get(origin + "/help")
        chromium.delete_all_cookies()


def _sms_code_then_portal(chromium, wait: WebDriverWait, registry, phone: str, name: str, shot: Screenshots, page: str) -> None:  # noqa: ANN001
    """The code the SMS brought, the portal's consent, and the portal greeting the person."""
    code = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name='otp']")))
    code.send_keys(latest_code(registry["sms"].base_url, phone))
    shot(page)
    code.submit()
    _consent(chromium, wait, shot)
    wait.until(main_says(f"Xin chào, {name}"))


def register_on_account_page(chromium, live, registry, portal: str, shot: Screenshots) -> tuple[str, str, str]:  # noqa: ANN001
    """A substantial sign-in at `portal` (registry details, code to the phone on record), then
    the account page, which that sign-in opens, and a passkey added there. Returns the citizen's
    (national ID, name, phone)."""
    pin, name, born, phone = _citizen(registry["db"])
    wait = WebDriverWait(chromium, 20)
    _fresh_browser(chromium, live.url, portal)
    chromium.get(portal + "/")
    chromium.find_element(By.CSS_SELECTOR, "#acr option[value='urn:nixa:loa:substantial']").click()
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "population-challenge-pin"))).send_keys(pin)
    chromium.find_element(By.ID, "population-challenge-full_name").send_keys(name)
    year, month, day = born.split("-")
    chromium.find_element(By.ID, "population-challenge-date_of_birth-day").send_keys(day)
    chromium.find_element(By.ID, "population-challenge-date_of_birth-month").send_keys(month)
    chromium.find_element(By.ID, "population-challenge-date_of_birth-year").send_keys(year)
    shot("registry-sign-in")
    chromium.find_element(By.ID, "population-challenge-date_of_birth-year").send_keys(Keys.ENTER)
    _sms_code_then_portal(chromium, wait, registry, phone, name, shot, "sms-code")
    chromium.get(live.url + "/account")
    field = wait.until(ec.presence_of_element_located((By.ID, "passkey-name")))
    assert field.get_attribute("value"), "the passkey is named after this browser by default"
    field.clear()
    field.send_keys("Điện thoại của tôi")
    shot("account-page")
    chromium.find_element(By.CSS_SELECTOR, "form[data-passkey='create'] button[type='submit']").click()
    wait.until(ec.url_contains("notice=passkey_registered"))
    assert "Điện thoại của tôi" in chromium.find_element(By.ID, "passkeys").text
    shot("passkey-added")
    return pin, name, phone


def _person(live, pin: str) -> str:  # noqa: ANN001
    with live.nixa.db.session() as s:
        return s.scalar(select(Person.id).where(Person.national_id == pin))


def _passkey_sign_in(chromium, wait: WebDriverWait, shot: Screenshots, page: str) -> None:  # noqa: ANN001
    chromium.find_element(By.CSS_SELECTOR, "#method-passkey summary").click()
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "form[data-passkey='get'] button[type='submit']")))
    shot(page)
    button.click()


def _consent(chromium, wait: WebDriverWait, shot: Screenshots) -> None:  # noqa: ANN001
    allow = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[value='allow']")))
    shot("consent")
    allow.click()


def test_register_a_passkey_then_sign_in_without_typing_anything(chromium, device, registry, portals, live) -> None:  # noqa: ANN001
    shot = Screenshots(chromium, "test_register_a_passkey_then_sign_in_without_typing_anything")
    pin, name, _ = register_on_account_page(chromium, live, registry, portals["tax"]["url"], shot)
    [stored] = chromium.execute_cdp_cmd("WebAuthn.getCredentials", {"authenticatorId": device})["credentials"]
    assert stored["isResidentCredential"]

    wait = WebDriverWait(chromium, 20)
    _fresh_browser(chromium, live.url, portals["services"]["url"], portals["tax"]["url"])
    chromium.get(portals["services"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "#acr option[value='urn:nixa:loa:substantial']").click()
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "method-passkey")))
    _passkey_sign_in(chromium, wait, shot, "chooser")
    _consent(chromium, wait, shot)
    wait.until(main_says(f"Xin chào, {name}"))
    assert "Đáng kể" in chromium.find_element(By.TAG_NAME, "main").text
    shot("portal-signed-in")
    with live.nixa.db.session() as s:
        row = s.scalars(select(WebAuthnCredential).where(WebAuthnCredential.person_id == _person(live, pin))).one()
        assert row.last_used_at is not None and row.loa == int(LevelOfAssurance.SUBSTANTIAL)


def test_step_up_from_an_sms_session_to_substantial_with_the_passkey(chromium, device, registry, portals, live) -> None:  # noqa: ANN001
    shot = Screenshots(chromium, "test_step_up_from_an_sms_session_to_substantial_with_the_passkey")
    pin, name, phone = register_on_account_page(chromium, live, registry, portals["tax"]["url"], shot)
    person_id = _person(live, pin)
    # The citizen's number is linked to them (as after an earlier sign-in by SMS): SMS signs them in at low.
    live.nixa.people.link(person_id, Assertion(connector_id="telecom", subject=phone, attributes={}, loa=LevelOfAssurance.LOW),
                          provenance=Provenance("telecom", 1, "127.0.0.1"))

    wait = WebDriverWait(chromium, 20)
    _fresh_browser(chromium, live.url, portals["services"]["url"], portals["tax"]["url"])
    chromium.get(portals["services"]["url"] + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()  # low, the portal's default
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#method-telecom-challenge summary"))).click()
    field = wait.until(ec.element_to_be_clickable((By.ID, "telecom-challenge-phone")))
    field.send_keys(phone)
    shot("chooser-low")
    field.submit()
    _sms_code_then_portal(chromium, wait, registry, phone, name, shot, "sms-code-low")
    assert "Thấp" in chromium.find_element(By.TAG_NAME, "main").text
    shot("portal-low")
    sms_session = live.nixa.sessions.person_sessions(person_id)[0][1]  # the newest: this browser's
    assert sms_session.loa == int(LevelOfAssurance.LOW)

    chromium.find_element(By.CSS_SELECTOR, "#acr option[value='urn:nixa:loa:substantial']").click()
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait.until(ec.presence_of_element_located((By.ID, "method-passkey")))
    _passkey_sign_in(chromium, wait, shot, "chooser-step-up")
    wait.until(main_says("Đáng kể"))
    shot("portal-substantial")
    after = {session.sid: session for _, session in live.nixa.sessions.person_sessions(person_id)}
    stepped = after[sms_session.sid]  # the same SSO session, stepped up: no second one was started
    assert len(after) == 2 and stepped.loa == int(LevelOfAssurance.SUBSTANTIAL)
    assert "passkey" in stepped.methods and {"mfa", "pop", "otp"} <= set(stepped.amr)
