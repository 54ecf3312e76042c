"""Certificate sign-in through NIXA's pages: the page shows the statement to sign, and a
signature over another sign-in's or another site's statement is refused and audited (issue 7,
item 4). The connector's own rules: tests/connectors/certificate/test_certificate_statement.py."""

from __future__ import annotations

import json
import secrets
import time

from connectors.certificate.agent import sign_challenge
from connectors.certificate.statement import Statement
from tests.conftest import form_action, hidden, register_client
from tests.login.support import certificate_sign_in, shown_statement
from tests.login.test_identity_assurance import HIGH, events, login_page, own_browser


def _statement_page(browser, portal) -> tuple[str, str]:  # noqa: ANN001
    """Open a high-level sign-in for `portal` and choose the certificate: (page, statement)."""
    _, page, _ = login_page(browser, portal, acr_values=HIGH)
    r = browser.post(form_action(page, "/certificate/certificate"), data={"csrf": hidden(page, "csrf")})
    assert r.status_code == 200, r.text
    return r.text, shown_statement(r.text)


def _submit(browser, page: str, fed: dict, statement: str):  # noqa: ANN001, ANN201
    signed = sign_challenge(fed["pki"].p12_path("an"), "nixa-demo", statement)
    return browser.post(form_action(page, "/verify"), data={"csrf": hidden(page, "csrf"), "signed": json.dumps(signed)})


def _refusals(nixa, reason: str) -> int:  # noqa: ANN001
    return sum(1 for e in events(nixa, "login.failed") if e.data.get("reason") == reason)


def test_the_page_shows_the_statement_naming_nixa_and_the_agency(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True, client_name="Cổng Thuế điện tử")
    with own_browser(app) as b:
        page, text = _statement_page(b, portal)
        statement = Statement.parse(text)
        assert statement.origin == "http://testserver" and statement.agency == "Cổng Thuế điện tử"
        assert statement.request.startswith("sha256:")
        assert "--origin http://testserver" in page  # the command the demo citizen runs checks it


def test_the_statement_of_one_sign_in_cannot_finish_another(nixa, federation, app):  # noqa: ANN001
    """The relay: an attacker's sign-in B is finished with the victim's signature over the
    statement of sign-in A (which the attacker showed the victim)."""
    portal = register_client(nixa, nixa_first_party=True)
    before = _refusals(nixa, "challenge_other_request")
    with own_browser(app) as victim, own_browser(app) as attacker:
        _, statement_a = _statement_page(victim, portal)
        page_b, _ = _statement_page(attacker, portal)
        r = _submit(attacker, page_b, federation, statement_a)
        assert r.status_code == 401 and "lượt đăng nhập khác" in r.text
        assert "/consent" not in r.headers.get("location", "")
    assert _refusals(nixa, "challenge_other_request") == before + 1


def test_a_statement_for_another_site_is_refused(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    before = _refusals(nixa, "challenge_foreign_origin")
    with own_browser(app) as b:
        page, ours = _statement_page(b, portal)
        theirs = Statement.make(origin="https://dichvucong-gov.example.com", agency="Cổng dịch vụ công", request=Statement.parse(ours).request,
                                issued_at=time.time(), ttl=120, nonce=secrets.token_urlsafe(32)).text()
        r = _submit(b, page, federation, theirs)
        assert r.status_code == 401 and "trang khác" in r.text
        # The refusal burnt this page's statement: signing it now is too late, a new one is shown.
        r = _submit(b, r.text, federation, ours)
        assert r.status_code == 401
    assert _refusals(nixa, "challenge_foreign_origin") == before + 1


def test_the_right_statement_signs_in(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=HIGH)
        r = certificate_sign_in(b, federation, page)
        assert r.status_code == 303, r.text
