"""The admin console in a real browser: an operator with the client-admin role signs in (a
password, then an authenticator code: substantial), onboards a NEW agency app through the
console's form, reads the secret shown once, and signs out; that app (a relying party on its
own port, configured with nothing but what the console showed) then signs a citizen in through
NIXA, verifying the ID token. Then a support agent locks the citizen in the console and the
app's session ends (back-channel logout). axe-core checks every console page on the way."""

from __future__ import annotations

import secrets
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from admin.console_signin import CONSOLE_COOKIE
from admin.roles import Role
from tests.admin.operators import new_operator
from tests.browser.conftest import assert_accessible, gone, main_says
from tests.conftest import LiveServer, form_action, free_port, hidden, make_citizen

CONSOLE = "/admin/console"


def _submit(driver, wait, element) -> None:  # noqa: ANN001
    """Submit a form and wait for the page it leads to."""
    page = driver.find_element(By.TAG_NAME, "main")
    element.submit()
    wait.until(gone(page))


def _password_method(driver, wait) -> None:  # noqa: ANN001
    """NIXA's sign-in page, its password method open (it may be open already: the recommended one)."""
    method = wait.until(ec.presence_of_element_located((By.ID, "method-local")))
    if method.get_attribute("open") is None:
        method.find_element(By.TAG_NAME, "summary").click()


def _console_sign_in_over_http(live, op) -> str:  # noqa: ANN001
    """The console's own sign-in (its /login, NIXA's pages, its callback) by a plain HTTP client;
    returns the console cookie it set."""
    import httpx

    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=20) as b:
        r = b.get(b.get(CONSOLE + "/login").headers["location"])
        rid = r.headers["location"]
        page = b.get(rid).text
        b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": op.username, "password": op.password})
        page = b.get(rid).text
        r = b.post(form_action(page, "/totp"), data={"csrf": hidden(page, "csrf"), "code": op.code()})
        assert "/admin/console/callback?" in r.headers.get("location", ""), r.text[:300]
        assert b.get(r.headers["location"]).status_code == 303
        return b.cookies[CONSOLE_COOKIE]


@pytest.fixture()
def relying_party():  # noqa: ANN201
    """A port for the new app, and a way to start it once the console has shown its secret."""
    from idp.demo.rp import PUBLIC_SERVICES, create_rp

    port = free_port()
    started: list[LiveServer] = []

    def start(issuer: str, client_id: str, secret: str) -> None:
        app = create_rp(issuer, client_id, secret, f"http://127.0.0.1:{port}", PUBLIC_SERVICES)
        started.append(LiveServer(app, port).start())

    yield {"url": f"http://127.0.0.1:{port}", "start": start}
    for server in started:
        server.stop()


def test_a_client_admin_onboards_an_app_in_the_console_and_the_app_signs_a_citizen_in(chromium, live, relying_party) -> None:  # noqa: ANN001
    nixa = live.nixa
    wait = WebDriverWait(chromium, 20)
    operator = new_operator(nixa, Role.CLIENT_ADMIN)
    chromium.delete_all_cookies()

    # 1. the console sends the operator to NIXA's sign-in: a password, then the authenticator app
    chromium.get(live.url + "/help?lang=vi")  # Vietnamese first, whatever the browser's own language
    chromium.get(live.url + CONSOLE + "/")
    _password_method(chromium, wait)
    wait.until(ec.visibility_of_element_located((By.ID, "local-username"))).send_keys(operator.username)
    chromium.find_element(By.ID, "local-password").send_keys(operator.password)
    _submit(chromium, wait, chromium.find_element(By.ID, "local-password"))
    field = wait.until(ec.visibility_of_element_located((By.ID, "totp-code")))
    field.send_keys(operator.code())
    _submit(chromium, wait, field)
    wait.until(ec.url_to_be(live.url + CONSOLE + "/"))
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Tổng quan 24 giờ qua"
    assert_accessible(chromium, "the console's dashboard")
    nav = chromium.find_element(By.CSS_SELECTOR, "nav.console-nav").text
    assert "Ứng dụng" in nav and "Công dân" not in nav and "Khóa ký" not in nav  # a client-admin's areas only

    # 2. agency apps → onboard a new one, pointing at the relying party's port
    chromium.find_element(By.CSS_SELECTOR, f"nav.console-nav a[href='{CONSOLE}/apps']").click()
    wait.until(ec.url_to_be(live.url + CONSOLE + "/apps"))
    assert_accessible(chromium, "the agency apps")
    chromium.find_element(By.CSS_SELECTOR, f"a[href='{CONSOLE}/apps/new']").click()
    wait.until(ec.visibility_of_element_located((By.ID, "client_id")))
    assert_accessible(chromium, "the new app form")
    client_id = "cong-moi-" + secrets.token_hex(3)
    rp = relying_party["url"]
    values = {"client_id": client_id, "client_name": "Cổng mới của Sở", "redirect_uris": f"{rp}/callback",
              "post_logout_redirect_uris": f"{rp}/", "backchannel_logout_uri": f"{rp}/backchannel-logout"}
    # first, a mistake: a redirect URI with a fragment comes back with its message and the values kept
    for name, value in {**values, "redirect_uris": f"{rp}/callback#x"}.items():
        chromium.find_element(By.ID, name).send_keys(value)
    scope = chromium.find_element(By.ID, "scope")
    scope.clear()
    scope.send_keys("openid profile email phone address")
    chromium.find_element(By.ID, "nixa_first_party").click()
    _submit(chromium, wait, scope)
    error = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role='alert']"))).text
    assert "Không thực hiện được" in error and "redirect" in error.lower()
    assert chromium.find_element(By.ID, "client_id").get_attribute("value") == client_id
    assert_accessible(chromium, "the form with its error")
    uris = chromium.find_element(By.ID, "redirect_uris")
    uris.clear()
    uris.send_keys(values["redirect_uris"])
    assert Select(chromium.find_element(By.ID, "token_endpoint_auth_method")).first_selected_option.text == "client_secret_basic"
    _submit(chromium, wait, uris)
    secret = wait.until(ec.visibility_of_element_located((By.ID, "client-secret"))).text
    assert chromium.find_element(By.ID, "app-client-id").text == client_id and len(secret) >= 32
    assert_accessible(chromium, "the new app with its secret")

    # 3. the operator signs out (RP-initiated logout at NIXA), back to the console's start
    chromium.find_element(By.CSS_SELECTOR, f"form[action='{CONSOLE}/logout'] button").click()
    wait.until(main_says("Bạn đã đăng xuất"))
    assert_accessible(chromium, "signed out of the console")
    chromium.get(live.url + CONSOLE + "/apps/" + client_id)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#method-local summary")))  # NIXA asks who is there again

    # 4. the new app, set up from what the console showed, signs a citizen in
    relying_party["start"](live.url, client_id, secret)
    citizen = make_citizen(nixa, name="Đỗ Minh Khang")
    chromium.get(rp + "/")
    chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _password_method(chromium, wait)
    wait.until(ec.visibility_of_element_located((By.ID, "local-username"))).send_keys(citizen.username)
    chromium.find_element(By.ID, "local-password").send_keys(citizen.password)
    _submit(chromium, wait, chromium.find_element(By.ID, "local-password"))
    wait.until(ec.url_to_be(rp + "/"))
    assert "Xin chào, Đỗ Minh Khang" in chromium.find_element(By.TAG_NAME, "main").text  # the ID token verified by the app

    # 5. a support agent locks the citizen in the console: the app's session ends
    agent = new_operator(nixa, Role.SUPPORT)
    cookie = _console_sign_in_over_http(live, agent)  # one browser holds one person's NIXA session: the agent's is its own
    chromium.get(live.url + "/help")  # a page on NIXA's origin, to set the console cookie there
    chromium.add_cookie({"name": CONSOLE_COOKIE, "value": cookie, "path": "/", "httpOnly": True, "sameSite": "Strict"})
    chromium.get(live.url + CONSOLE + "/people")
    name = wait.until(ec.visibility_of_element_located((By.ID, "name")))
    assert_accessible(chromium, "the people search")
    name.send_keys("Đỗ Minh Khang")
    chromium.find_element(By.ID, "reason").send_keys("Phiếu hỗ trợ 991: công dân báo bị chiếm tài khoản")
    _submit(chromium, wait, name)
    chromium.find_element(By.LINK_TEXT, "Đỗ Minh Khang").click()
    reason = wait.until(ec.visibility_of_element_located((By.ID, "lock-reason")))
    assert_accessible(chromium, "the person's record")
    assert client_id in chromium.find_element(By.TAG_NAME, "main").text  # the session at the new app
    _submit(chromium, wait, reason)
    assert "Đã khóa" in wait.until(ec.visibility_of_element_located((By.ID, "person-status"))).text
    assert_accessible(chromium, "the person, locked")
    deadline = time.time() + 30
    while True:
        chromium.get(rp + "/")
        if "Xin chào" not in chromium.find_element(By.TAG_NAME, "main").text:
            break
        assert time.time() < deadline, "the app was never told the citizen was locked"
        time.sleep(0.5)
    assert chromium.find_elements(By.CSS_SELECTOR, "form[action='/login']")


def test_every_console_page_is_accessible_and_fits_a_small_phone(chromium, live) -> None:  # noqa: ANN001
    """A super-admin's every area, in both languages: axe finds nothing serious, and each page
    works at 320 px (wide tables scroll in their own region)."""
    from tests.browser.conftest import assert_fits, phone_screen

    nixa = live.nixa
    wait = WebDriverWait(chromium, 20)
    admin = new_operator(nixa, Role.SUPER_ADMIN)
    chromium.delete_all_cookies()
    chromium.get(live.url + "/help?lang=vi")
    chromium.add_cookie({"name": CONSOLE_COOKIE, "value": _console_sign_in_over_http(live, admin), "path": "/", "httpOnly": True,
                         "sameSite": "Strict"})
    pages = ["/", "/apps", "/apps/new", "/apps/nixa-admin-console", f"/people?name=C%C3%A1n+b%E1%BB%99&reason=Ki%E1%BB%83m+tra",
             f"/people/{admin.person_id}?reason=Ki%E1%BB%83m+tra", "/audit", "/connectors", "/keys"]
    for lang in ("vi", "en"):
        chromium.get(f"{live.url}{CONSOLE}/?lang={lang}")
        for path in pages:
            chromium.get(live.url + CONSOLE + path)
            wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
            assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
            assert_accessible(chromium, f"{path} ({lang})")
            with phone_screen(chromium):
                assert_fits(chromium, f"{path} ({lang})")
