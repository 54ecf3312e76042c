"""The method chooser: one method open at a time (an exclusive accordion that works without
JavaScript), the recommended method for the level asked first and open, staff sign-in on its own
entry, the birth date typed as day / month / year, and an error shown beside the method it is
about, with that method open."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from idp.login.methods import combine_dates
from tests.conftest import form_action, hidden, make_citizen, register_client
from tests.login.test_identity_assurance import HIGH, LOW, SUBSTANTIAL, details, fresh_citizen, login_page, own_browser


def _methods(page: str) -> list[tuple[str, bool]]:
    """(method id, open) for each method on the page, in order."""
    return [(m.group(1), bool(m.group(2))) for m in re.finditer(r'<details class="method" name="method" id="method-([^"]+)"( open)?>', page)]


@pytest.mark.parametrize(("form", "expected"), [
    ({"date_of_birth__day": "15", "date_of_birth__month": "1", "date_of_birth__year": "1990"}, "1990-01-15"),
    ({"date_of_birth__day": " 05 ", "date_of_birth__month": "12", "date_of_birth__year": "2001"}, "2001-12-05"),
    ({"date_of_birth__day": "31", "date_of_birth__month": "2", "date_of_birth__year": "1990"}, "invalid"),
    ({"date_of_birth__day": "1", "date_of_birth__month": "13", "date_of_birth__year": "1990"}, "invalid"),
    ({"date_of_birth__day": "1", "date_of_birth__month": "1", "date_of_birth__year": "90"}, "invalid"),
    ({"date_of_birth__day": "a", "date_of_birth__month": "1", "date_of_birth__year": "1990"}, "invalid"),
    ({"date_of_birth__day": "1", "date_of_birth__year": "1990"}, "invalid"),
])
def test_a_date_typed_as_day_month_year_becomes_one_iso_date(form, expected):  # noqa: ANN001
    out = combine_dates({"pin": "x", **form})
    assert out == {"pin": "x", "date_of_birth": expected}


def test_one_method_open_the_recommended_one_first(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, low, _ = login_page(b, portal, acr_values=LOW)
        _, substantial, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        _, high, _ = login_page(b, portal, acr_values=HIGH)
    for page, first in ((low, "local"), (substantial, None), (high, "certificate-cert")):
        methods = _methods(page)
        assert [opened for _, opened in methods].count(True) == 1 and methods[0][1], methods  # the first one, and only it, is open
        if first:
            assert methods[0][0] == first
        assert ('class="badge recommended"' in page) == (len(methods) > 1)  # "recommended" only where there is a choice
    # at substantial the first is a substantial method (the least effort that reaches the level), not the certificate
    assert _methods(substantial)[0][0] in ("population-challenge", "operator-redirect")
    # an accordion of <details>: no JavaScript needed; the one script is the passkey method's file (no inline script)
    assert re.findall(r"<script[^>]*>", low) == ['<script src="/static/passkey.js" defer>']


def test_staff_sign_in_has_its_own_entry(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, acr_values=LOW)
        assert "mof" not in dict(_methods(page)) and f"/interaction/{rid}/staff" in page
        staff = b.get(f"/interaction/{rid}/staff").text
        assert [m for m, _ in _methods(staff)] == ["mof"] and f'href="/interaction/{rid}"' in staff
        # a failed staff sign-in comes back on the staff entry, the error beside the form
        r = b.post(form_action(staff, "/password/mof"), data={"csrf": hidden(staff, "csrf"), "username": "nguyenvanan", "password": "no"})
        assert r.status_code == 401 and _methods(r.text) == [("mof", True)]
        assert re.search(r'id="method-mof" open>.*?role="alert" id="login-error".*?aria-describedby="login-error"', r.text, re.S)


def test_an_error_opens_its_own_method_with_the_error_beside_it(nixa, federation, app):  # noqa: ANN001
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=LOW)
        # the registry's challenge is not the open one; a wrong answer there opens it, error inside
        assert dict(_methods(page))["population-challenge"] is False
        r = b.post(form_action(page, "/challenge/population"), data={
            "csrf": hidden(page, "csrf"), "pin": citizen.username, "full_name": "X", "date_of_birth__day": "31",
            "date_of_birth__month": "2", "date_of_birth__year": "1990"})
        assert r.status_code == 401
        assert dict(_methods(r.text))["population-challenge"] is True and [o for _, o in _methods(r.text)].count(True) == 1
        block = r.text.split('id="method-population-challenge"')[1].split("</details>")[0]
        assert 'role="alert" id="login-error"' in block and 'aria-describedby="login-error"' in block


def test_the_registry_challenge_takes_the_birth_date_as_day_month_year(nixa, federation, app):  # noqa: ANN001
    citizen = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    year, month, day = citizen.date_of_birth.split("-")
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        fieldset = page.split('id="population-challenge-date_of_birth"')[1].split("</fieldset>")[0]
        assert all(f'name="date_of_birth__{p}"' in fieldset for p in ("day", "month", "year")) and 'type="date"' not in page
        r = b.post(form_action(page, "/challenge/population"), data={
            "csrf": hidden(page, "csrf"), "pin": citizen.pin, "full_name": citizen.full_name,
            "date_of_birth__day": str(int(day)), "date_of_birth__month": month, "date_of_birth__year": year})
        assert r.status_code == 303 and r.headers["location"].endswith("/otp"), r.text[:300]


def test_the_chooser_without_a_session_cookie_is_refused_not_shown(app):  # noqa: ANN001
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        assert b.get("/interaction/nope/staff").status_code == 400


def test_a_source_that_is_down_is_shown_unavailable_and_the_others_keep_working(nixa, federation, app):  # noqa: ANN001
    from tests.conftest import free_port, uid

    down = uid("reg-down")[:32]
    # A registry nothing answers for: one failure opens its circuit (for this worker, 60 s).
    nixa.connectors.upsert(down, "population", {"base_url": f"http://127.0.0.1:{free_port()}", "api_key": "k", "retries": 0,
                                                "timeout": 1, "breaker_threshold": 1, "breaker_reset_after": 60,
                                                "otp_connector": "telecom", "challenge_loa": "substantial"},
                           loa="low", display_name_vi="Dân cư (hỏng)", display_name_en="Registry (down)")
    portal = register_client(nixa, nixa_first_party=True)
    try:
        with own_browser(app) as b:
            _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
            assert f"/challenge/{down}" in page and 'class="badge unavailable"' not in page  # nothing known yet
            someone = fresh_citizen(federation)
            r = b.post(form_action(page, f"/challenge/{down}"), data={"csrf": hidden(page, "csrf"), **details(someone)})
            assert r.status_code in (502, 503) and r.status_code != 500
            _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
            methods = _methods(page)
            assert methods[-1][0] == f"{down}-challenge" and not methods[-1][1]  # last, closed
            assert f"/challenge/{down}" not in page  # no form that cannot work
            assert page.count('class="badge unavailable"') == 1 and "Tạm thời gián đoạn" in page
            assert methods[0][1] and methods[0][0] != f"{down}-challenge"  # an available method is the one open
            # the working registry still signs in
            r = b.post(form_action(page, "/challenge/population"), data={"csrf": hidden(page, "csrf"), **details(someone)})
            assert r.status_code == 303 and r.headers["location"].endswith("/otp")
    finally:
        nixa.connectors.upsert(down, "population", {"base_url": "http://127.0.0.1:1", "api_key": "k"}, enabled=False)
