"""Browser steps shared by the sign-in tests: the registry's challenge, a certificate signature,
consent, and reading the ID token."""

from __future__ import annotations

import html
import json

from joserfc import jwt
from joserfc.jwk import KeySet

from connectors.certificate.agent import check_statement, sign_challenge
from connectors.population.demo_data import DEMO_CITIZEN, DEMO_PHONE_E164
from tests.conftest import form_action, hidden, query_of
from tests.connectors.telecom.outbox import latest_code


def claims_of(http, token: str) -> dict:  # noqa: ANN001
    return jwt.decode(token, KeySet.import_key_set(http.get("/jwks").json()), algorithms=["ES256", "RS256", "EdDSA"]).claims


def redeem_claims(http, client, location: str, verifier: str) -> dict:  # noqa: ANN001
    cb = query_of(location)
    assert "code" in cb, location
    r = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": client.redirect_uri,
                                  "code_verifier": verifier}, auth=(client.client_id, client.secret))
    assert r.status_code == 200, r.text
    return claims_of(http, r.json()["id_token"])


def consent_if_asked(browser, r):  # noqa: ANN001, ANN201
    if r.headers["location"].startswith("/interaction/"):
        page = browser.get(r.headers["location"])
        if 'name="decision"' in page.text:
            r = browser.post(form_action(page.text, "/consent"), data={"csrf": hidden(page.text, "csrf"), "decision": "allow"})
    return r


def registry_otp(browser, fed: dict, login_page: str, citizen=DEMO_CITIZEN, phone: str = DEMO_PHONE_E164):  # noqa: ANN001, ANN201
    """The registry's challenge: the details identify the record, the code goes to its phone on
    record (read from the operator sandbox's outbox, as the holder of that phone would)."""
    form = {"csrf": hidden(login_page, "csrf"), "pin": citizen.pin, "full_name": citizen.full_name,
            "date_of_birth": citizen.date_of_birth}
    r = browser.post(form_action(login_page, "/challenge/population"), data=form)
    assert r.status_code == 303 and r.headers["location"].endswith("/otp"), r.text
    page = browser.get(r.headers["location"])
    assert "****" in page.text
    code = latest_code(fed["sms"].base_url, phone)
    return browser.post(form_action(page.text, "/otp"), data={"csrf": hidden(page.text, "csrf"), "otp": code, "action": "verify"})


def shown_statement(page: str) -> str:
    """The statement the certificate page shows, exactly as the person copies it."""
    return html.unescape(page.split('<textarea id="challenge" readonly rows="7" cols="80">\n')[1].split("</textarea>")[0])


def certificate_sign_in(browser, fed: dict, login_page: str, label: str = "an", origin: str = "http://testserver"):  # noqa: ANN001, ANN201
    r = browser.post(form_action(login_page, "/certificate/certificate"), data={"csrf": hidden(login_page, "csrf")})
    assert r.status_code == 200, r.text
    statement = shown_statement(r.text)
    check_statement(statement, origin)  # what the citizen's signing plug-in checks
    signed = sign_challenge(fed["pki"].p12_path(label), "nixa-demo", statement)
    return browser.post(form_action(r.text, "/verify"), data={"csrf": hidden(r.text, "csrf"), "signed": json.dumps(signed)})


_used_pins: set[str] = set()


def unused_registry_citizen(registry_db) -> tuple[str, str, str, str]:  # noqa: ANN001
    """(pin, full name, birth date, E.164 phone) of an active synthetic citizen of a registry
    sandbox's database that no other test of this run has signed in: every sandbox is generated
    from the same seed, and the Persons a sign-in creates live on in the shared NIXA database."""
    import random
    import sqlite3
    from contextlib import closing

    from connectors.population.demo_data import DEMO_PINS
    from connectors.telecom.phone import normalize_msisdn

    with closing(sqlite3.connect(registry_db)) as conn:
        rows = conn.execute("SELECT pin, full_name, date_of_birth, phone FROM citizens WHERE status = 'active' AND phone IS NOT NULL"
                            " AND phone != ''").fetchall()
    random.shuffle(rows)
    for pin, name, born, phone in rows:
        if pin in _used_pins or pin in DEMO_PINS:
            continue
        try:
            e164 = normalize_msisdn(phone)
        except ValueError:
            continue
        _used_pins.add(pin)
        return pin, name, born, e164
    raise AssertionError("the registry sandbox ran out of citizens")
