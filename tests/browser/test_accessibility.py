"""The accessibility gate on the pages no journey visits (the journeys check theirs as they go):
axe-core finds no serious or critical violation on the home, help and privacy pages, the 404 and
expired-request pages, the staff entry with and without an error; a sign-in and its consent
work with the keyboard alone, the focus always visible, errors announced and tied to their
fields; and the chooser stays short on a phone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import artifacts_dir, assert_accessible, demo_portals, disable_connectors, gone, main_says, phone_screen
from tests.conftest import make_citizen


@pytest.fixture(scope="module")
def portals(live) -> Iterator[dict]:  # noqa: ANN001
    with demo_portals(live) as out:
        yield out


@pytest.fixture(scope="module")
def staff_directory(live, tmp_path_factory) -> Iterator[None]:  # noqa: ANN001
    """An agency's staff directory (slapd) as connector `mof`: the staff entry exists."""
    from connectors.ldap.sandbox import start_directory

    directory = start_directory(tmp_path_factory.mktemp("staff") / "ldap", 0, timeout=15)
    try:
        live.nixa.connectors.upsert("mof", "ldap", directory.connector_config(), loa="low", display_name_vi="Cán bộ",
                                    display_name_en="Staff")
        live.nixa.connectors._refresh(force=True)
        yield
    finally:
        disable_connectors(live, "mof")
        directory.stop()


def _open_chooser(driver, portal: str, wait: WebDriverWait, level: str = "low") -> None:  # noqa: ANN001
    """From the portal's start page to NIXA's method chooser for a sign-in at `level`."""
    driver.delete_all_cookies()
    driver.get(portal + "/")
    driver.find_element(By.CSS_SELECTOR, f"#acr option[value='urn:nixa:loa:{level}']").click()
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").send_keys(Keys.ENTER)
    wait.until(ec.url_contains("/interaction/"))  # NIXA's page, not the portal's (which has no such path)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "details.method")))


def test_pages_outside_the_journeys_have_no_serious_violation(chromium, live, portals, registry, staff_directory) -> None:  # noqa: ANN001
    wait = WebDriverWait(chromium, 20)
    for path, what in (("/", "the home page"), ("/help", "the help page"), ("/privacy", "the privacy page"),
                       ("/no-such-page", "the 404 page"), ("/interaction/no-such-request", "the expired-request page")):
        chromium.get(live.url + path)
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert_accessible(chromium, what)

    _open_chooser(chromium, portals["services"]["url"], wait)
    chromium.find_element(By.CSS_SELECTOR, ".other-entry a").send_keys(Keys.ENTER)
    wait.until(ec.url_contains("/staff"))
    staff_entry = chromium.current_url
    wait.until(ec.presence_of_element_located((By.ID, "mof-username"))).send_keys("nguyenvanan")
    assert_accessible(chromium, "the staff entry")
    chromium.find_element(By.ID, "mof-password").send_keys("not the password" + Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "login-error")))
    assert_accessible(chromium, "the staff entry with an error")

    # the same page in English: the whole page in English, the way back to Vietnamese marked as such
    chromium.get(staff_entry)
    chromium.find_element(By.CSS_SELECTOR, "a.lang").send_keys(Keys.ENTER)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    assert chromium.find_element(By.CSS_SELECTOR, "a.lang").get_attribute("lang") == "vi"
    assert_accessible(chromium, "the staff entry in English")


def test_the_gate_fails_on_a_serious_violation_and_names_it(chromium, live) -> None:  # noqa: ANN001
    chromium.get(live.url + "/help")
    chromium.execute_script("document.querySelector('main').insertAdjacentHTML('beforeend', '<button id=\"nameless\"></button>')")
    with pytest.raises(AssertionError, match=r"\[critical\] button-name: .*\n +#nameless"):
        assert_accessible(chromium, "the help page with a nameless button (the gate's own check)")


def _focused(driver) -> dict:  # noqa: ANN001
    return driver.execute_script("""
        const e = document.activeElement, style = getComputedStyle(e);
        return {tag: e.tagName.toLowerCase(), id: e.id, cls: e.className, text: (e.innerText || '').trim().slice(0, 60),
                name: e.getAttribute('name'), value: e.getAttribute('value'), parent: e.parentElement.id,
                outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};""")


def _tab_to(driver, matches, shift: bool = False, limit: int = 25) -> dict:  # noqa: ANN001
    """Press Tab (Shift-Tab) until the focused element `matches`; every element the focus lands
    on on the way must show it (WCAG 2.4.7: a visible outline, not `outline: none`)."""
    for _ in range(limit):
        keys = ActionChains(driver)
        (keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT) if shift else keys.send_keys(Keys.TAB)).perform()
        focused = _focused(driver)
        assert focused["outline"] != "none" and focused["width"] > 0, f"the focus is invisible on {focused}"
        if matches(focused):
            return focused
    raise AssertionError(f"{limit} presses of Tab never reached the element: the focus ended on {focused}")


def _press(driver, key: str) -> None:  # noqa: ANN001
    ActionChains(driver).send_keys(key).perform()


def _type(driver, text: str) -> None:  # noqa: ANN001
    ActionChains(driver).send_keys(text).perform()


def _open_methods(driver) -> list[str]:  # noqa: ANN001
    return [d.get_attribute("id") for d in driver.find_elements(By.CSS_SELECTOR, "details.method[open]")]


def test_sign_in_and_consent_with_the_keyboard_alone(chromium, live, portals, registry) -> None:  # noqa: ANN001
    citizen = make_citizen(live.nixa, name="Phạm Thị Lan")
    wait = WebDriverWait(chromium, 20)
    _open_chooser(chromium, portals["services"]["url"], wait)
    assert _open_methods(chromium) == ["method-local"]  # the recommended method, open

    # the first Tab reaches the skip link; Enter moves the focus to the main content
    _tab_to(chromium, lambda f: f["cls"] == "skip", limit=1)
    _press(chromium, Keys.ENTER)
    assert _focused(chromium)["id"] == "main" and chromium.current_url.endswith("#main")

    # another method opens from the keyboard (Enter on its summary) and closes the open one
    _tab_to(chromium, lambda f: f["tag"] == "summary" and f["parent"] == "method-telecom-challenge")
    _press(chromium, Keys.ENTER)
    assert _open_methods(chromium) == ["method-telecom-challenge"]
    _tab_to(chromium, lambda f: f["tag"] == "summary" and f["parent"] == "method-local", shift=True)
    _press(chromium, Keys.SPACE)
    assert _open_methods(chromium) == ["method-local"]

    # a wrong password: the error is announced and tied to the fields it is about
    _tab_to(chromium, lambda f: f["id"] == "local-username")
    _type(chromium, citizen.username)
    _tab_to(chromium, lambda f: f["id"] == "local-password", limit=1)
    _type(chromium, "not the password" + Keys.ENTER)
    error = wait.until(ec.presence_of_element_located((By.ID, "login-error")))
    assert error.get_attribute("role") == "alert" and error.text
    for field in ("local-username", "local-password"):
        field = chromium.find_element(By.ID, field)
        assert field.get_attribute("aria-describedby") == "login-error" and field.get_attribute("aria-invalid") == "true"
    assert _open_methods(chromium) == ["method-local"]  # the method that failed stays open, the error beside it
    assert_accessible(chromium, "the chooser with an error beside a method")

    # the right password, then the consent, from the keyboard
    _tab_to(chromium, lambda f: f["id"] == "local-username")
    ActionChains(chromium).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(citizen.username).perform()
    _tab_to(chromium, lambda f: f["id"] == "local-password", limit=1)
    _type(chromium, citizen.password + Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "button[value='allow']")))
    _tab_to(chromium, lambda f: f["value"] == "allow")
    consent = chromium.find_element(By.TAG_NAME, "main")
    _press(chromium, Keys.SPACE)
    wait.until(gone(consent))
    wait.until(main_says("Xin chào, Phạm Thị Lan"))
    assert chromium.current_url == portals["services"]["url"] + "/"


PHONE = (390, 844)  # a common phone of today, in CSS pixels


def test_the_chooser_fits_in_two_screens_of_a_phone(chromium, live, portals, registry) -> None:  # noqa: ANN001
    """The page heights go into the test artefacts (layout/chooser-heights.json)."""
    wait = WebDriverWait(chromium, 20)
    heights = {}
    with phone_screen(chromium, *PHONE):
        for level in ("low", "substantial"):
            _open_chooser(chromium, portals["services"]["url"], wait, level)
            heights[level] = chromium.execute_script("return document.documentElement.scrollHeight")
    (artifacts_dir("layout") / "chooser-heights.json").write_text(json.dumps({"screen": PHONE, "heights": heights}), encoding="utf-8")
    for level, height in heights.items():
        assert height <= 2 * PHONE[1], f"the chooser at {level} is {height} px tall on a {PHONE[0]} × {PHONE[1]} phone"
