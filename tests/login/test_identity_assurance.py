"""The identity-assurance issue, attack by attack: each test is what an impostor tried against a
running NIXA, and fails on the code before the fix. The attack number in each test's name and
docstring is the issue's. Every counterpart is real (see conftest.py): the registry, the
operator's SMS API and OpenID provider, the CA, the directory.

Each test uses its own client address (TestClient `client=`), so one test's failed attempts
never throttle another's."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from connectors.telecom.phone import normalize_msisdn
from idp.i18n import messages
from idp.identity import status as id_status
from idp.store.models import AuditEvent, LinkedIdentity, Person
from tests.conftest import authorize, form_action, hidden, make_citizen, query_of, register_client
from tests.connectors.oidc.upstream_browser import _FormParser, sign_in_at_upstream
from tests.connectors.telecom.outbox import latest_code, outbox, wrong_code
from tests.login.support import consent_if_asked, redeem_claims, registry_otp, unused_registry_citizen

LOW, SUBSTANTIAL, HIGH = "urn:nixa:loa:low", "urn:nixa:loa:substantial", "urn:nixa:loa:high"
_address = iter(range(10, 250))


@dataclass(frozen=True)
class RegistryCitizen:
    pin: str
    full_name: str
    date_of_birth: str
    phone: str  # E.164


def fresh_citizen(fed: dict) -> RegistryCitizen:
    """An active synthetic citizen with a mobile number, used by no other test of this run."""
    return RegistryCitizen(*unused_registry_citizen(fed["registry_db"]))


def own_browser(app, address: str | None = None) -> TestClient:  # noqa: ANN001
    """A browser at its own address (198.51.100.x, TEST-NET-2: never a real host)."""
    return TestClient(app, base_url="http://testserver", follow_redirects=False,
                      client=(address or f"198.51.100.{next(_address)}", 50000))


def login_page(browser, client, **params) -> tuple[str, str, str]:  # noqa: ANN001
    """Start a request; returns (rid, page html, verifier)."""
    r, _, verifier = authorize(browser, client, **params)
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.headers.get("location")
    page = browser.get(r.headers["location"]).text
    return r.headers["location"].split("/")[2], page, verifier


def details(citizen, **changes) -> dict[str, str]:  # noqa: ANN001
    return {"pin": citizen.pin, "full_name": citizen.full_name, "date_of_birth": citizen.date_of_birth, **changes}


def operator_sign_in(browser, fed: dict, page: str, typed: str, confirmed: str | None = None):  # noqa: ANN001, ANN201
    """Operator sign-in: `typed` on NIXA's page, `confirmed` on the operator's (default the same)."""
    r = browser.post(form_action(page, "/redirect/operator"), data={"csrf": hidden(page, "csrf"), "login_hint": typed})
    assert r.status_code == 303 and r.headers["location"].startswith(fed["operator"].issuer), r.text
    params = sign_in_at_upstream(r.headers["location"], fed["callback"], msisdn=confirmed)
    return browser.get("/login/callback/operator", params=params), r.headers["location"]


def events(nixa, type_: str, person_id: str | None = None) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        q = select(AuditEvent).where(AuditEvent.type == type_)
        if person_id:
            q = q.where(AuditEvent.person_id == person_id)
        return list(s.scalars(q.order_by(AuditEvent.id)))


def link_of(nixa, connector_id: str, subject: str) -> LinkedIdentity | None:  # noqa: ANN001
    with nixa.db.session() as s:
        return s.scalar(select(LinkedIdentity).where(LinkedIdentity.connector_id == connector_id, LinkedIdentity.subject == subject))


def links_of(nixa, connector_id: str, person_id: str | None = None) -> list[LinkedIdentity]:  # noqa: ANN001
    """The operator's `sub` is pairwise (hashed per client), so links are found by person."""
    with nixa.db.session() as s:
        q = select(LinkedIdentity).where(LinkedIdentity.connector_id == connector_id)
        if person_id:
            q = q.where(LinkedIdentity.person_id == person_id)
        return list(s.scalars(q))


def person_by_pin(nixa, pin: str) -> Person | None:  # noqa: ANN001
    with nixa.db.session() as s:
        return s.scalar(select(Person).where(Person.national_id == pin))


def random_sim() -> str:
    return "098" + "".join(random.choice("0123456789") for _ in range(7))


# ---- 1. public data never signs anyone in ---------------------------------------------------


def test_attack1_id_name_and_birth_date_alone_never_sign_in(nixa, federation, app):  # noqa: ANN001
    victim = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal)  # the default level: low
        assert "/password/population" not in page  # no details-only method on the chooser
        r = b.post(f"/interaction/{rid}/password/population", data={"csrf": hidden(page, "csrf"), **details(victim)})
        assert r.status_code == 400 and "location" not in r.headers
        assert not any(c.startswith("nixa_session") for c in b.cookies.keys())
    assert person_by_pin(nixa, victim.pin) is None  # nothing was created from what a photocopy shows


def test_attack1_default_acr_values_and_minimum_level_are_enforced(nixa, federation, app):  # noqa: ANN001
    citizen = make_citizen(nixa)
    strict = register_client(nixa, nixa_first_party=True, default_acr_values=[SUBSTANTIAL])
    with own_browser(app) as b:
        rid, page, _ = login_page(b, strict)  # no acr_values: the client's default applies
        # the password only as step one of password + authenticator app (login/test_totp.py), never alone
        assert messages("vi")["method_local"] not in page and messages("vi")["method_local_totp"] in page
        assert "/challenge/population" in page
        r = b.post(f"/interaction/{rid}/local", data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                       "password": citizen.password})
        assert r.status_code == 403 and "location" not in r.headers and b.cookies.get("nixa_session") is None
    high_only = register_client(nixa, nixa_first_party=True, nixa_minimum_acr=HIGH)
    with own_browser(app) as b:
        _, page, _ = login_page(b, high_only, acr_values=LOW)  # asking for less than the minimum gets the minimum
        assert "/certificate/certificate" in page and "/challenge/population" not in page and "/local" not in page


def test_attack1_levels_in_client_metadata_are_checked(nixa):  # noqa: ANN001
    from idp.oidc.metadata import InvalidClientMetadata, validate_metadata

    base = {"client_id": "x-levels", "redirect_uris": ["https://a.example.vn/cb"]}
    for bad in ({"default_acr_values": ["urn:nixa:loa:extreme"]}, {"default_acr_values": "urn:nixa:loa:low"},
                {"nixa_minimum_acr": "3"}):
        with pytest.raises(InvalidClientMetadata):
            validate_metadata({**base, **bad})
    assert validate_metadata({**base, "nixa_minimum_acr": HIGH})["nixa_minimum_acr"] == HIGH


# ---- 2. own SIM + the victim's details: no takeover ---------------------------------------------


def test_attack2_own_sim_and_victims_details_cannot_link(nixa, federation, app):  # noqa: ANN001
    victim = fresh_citizen(federation)
    attacker_sim = random_sim()
    attacker_e164 = normalize_msisdn(attacker_sim)
    portal = register_client(nixa, nixa_first_party=True)
    operator_links = len(links_of(nixa, "operator"))
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        r, _ = operator_sign_in(b, federation, page, attacker_sim)
        assert r.status_code == 303 and r.headers["location"].endswith("/proofing")
        rid = r.headers["location"].split("/")[2]
        page = b.get(r.headers["location"]).text
        assert "/password/population" not in page
        # knowledge alone is refused outright, as a proof too
        r = b.post(f"/interaction/{rid}/password/population", data={"csrf": hidden(page, "csrf"), **details(victim)})
        assert r.status_code == 400
        # the registry's challenge sends the code to the VICTIM's phone, never to the attacker's
        r = b.post(form_action(page, "/challenge/population"), data={"csrf": hidden(page, "csrf"), **details(victim)})
        assert r.status_code == 303 and r.headers["location"].endswith("/otp")
        sent = latest_code(federation["sms"].base_url, victim.phone)
        assert outbox(federation["sms"].base_url, attacker_e164) == []
        otp = b.get(r.headers["location"]).text
        r = b.post(form_action(otp, "/otp"), data={"csrf": hidden(otp, "csrf"), "otp": wrong_code(sent), "action": "verify"})
        assert r.status_code == 401 and "location" not in r.headers
    assert len(links_of(nixa, "operator")) == operator_links  # nothing linked, to anyone
    assert person_by_pin(nixa, victim.pin) is None


def test_attack2_a_real_link_records_its_provenance_and_tells_the_citizen(nixa, federation, app, http):  # noqa: ANN001
    citizen = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    address = "198.51.100.251"
    with own_browser(app, address) as b:
        _, page, verifier = login_page(b, portal, acr_values=SUBSTANTIAL)
        r, _ = operator_sign_in(b, federation, page, citizen.phone)
        page = b.get(r.headers["location"]).text
        r = consent_if_asked(b, registry_otp(b, federation, page, citizen, citizen.phone))
        claims = redeem_claims(http, portal, r.headers["location"], verifier)
    assert claims["acr"] == SUBSTANTIAL
    person = person_by_pin(nixa, citizen.pin)
    [link] = links_of(nixa, "operator", person.id)
    assert (link.proof_method, link.proof_loa, link.loa, link.linked_from) == ("population", 2, 2, address)
    linked = [e for e in events(nixa, "identity.linked", person.id) if e.data["connector"] == "operator"]
    assert linked and linked[-1].ip == address and linked[-1].data["proof_method"] == "population"
    notices = [m["text"] for m in outbox(federation["sms"].base_url, citizen.phone) if "lien ket" in m["text"]]
    assert notices, "the citizen is told of the new link on the phone on record"
    assert events(nixa, "notification.sent", person.id)


def test_attack2_session_level_is_the_minimum_of_what_was_proven(nixa, federation, app, http):  # noqa: ANN001
    """An SMS-only sign-in (low) proven through the registry (substantial) is a low session:
    the link is as strong as its weakest part, never the maximum of the two."""
    citizen = fresh_citizen(federation)
    own = random_sim()
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, verifier = login_page(b, portal, acr_values=LOW)
        r = b.post(form_action(page, "/challenge/telecom"), data={"csrf": hidden(page, "csrf"), "phone": own})
        otp = b.get(r.headers["location"]).text
        code = latest_code(federation["sms"].base_url, normalize_msisdn(own))
        r = b.post(form_action(otp, "/otp"), data={"csrf": hidden(otp, "csrf"), "otp": code, "action": "verify"})
        assert r.headers["location"].endswith("/proofing")
        page = b.get(r.headers["location"]).text
        r = consent_if_asked(b, registry_otp(b, federation, page, citizen, citizen.phone))
        claims = redeem_claims(http, portal, r.headers["location"], verifier)
        assert claims["acr"] == LOW
        # and the SMS link alone never reaches substantial later
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL, prompt="login")
        assert "/challenge/telecom" not in page
    assert link_of(nixa, "telecom", normalize_msisdn(own)).loa == 1


def test_attack2_an_upstream_not_trusted_for_the_id_cannot_assert_it(nixa, federation):  # noqa: ANN001
    from connectors.base import Assertion, VerifiedAttribute
    from idp.identity import linking

    entry = nixa.connectors.entry("operator")
    claimed = Assertion("operator", "84900000001", {"national_id": VerifiedAttribute("national_id", "001090000001", "oidc:operator", 0)})
    assert linking.national_id_proof(nixa, entry, linking.strip_unproven_national_id(entry, claimed), 2) is None


def test_attack2_an_operator_asserting_the_id_must_match_the_phone_on_record(nixa, federation):  # noqa: ANN001
    from connectors.base import Assertion, VerifiedAttribute
    from idp.identity import linking

    citizen = fresh_citizen(federation)
    entry = nixa.connectors.entry("operator")
    trusted = type(entry)(**{**entry.__dict__, "config": {**entry.config, "asserts_national_id": True}})

    def assertion(phone: str) -> Assertion:
        return Assertion("operator", phone.lstrip("+"), {
            "national_id": VerifiedAttribute("national_id", citizen.pin, "oidc:operator", 0),
            "phone_number": VerifiedAttribute("phone_number", phone, "oidc:operator", 0)})

    with pytest.raises(linking.LinkRefused) as refused:
        linking.national_id_proof(nixa, trusted, assertion(normalize_msisdn(random_sim())), 2)
    assert refused.value.code == "msisdn_not_on_record"
    proof = linking.national_id_proof(nixa, trusted, assertion(citizen.phone), 2)
    assert proof == linking.Proof(citizen.pin, "operator", 2)
    with pytest.raises(linking.LinkRefused):
        linking.check_link(3, proof)  # a substantial proof never links a source trusted at high


# ---- 3. every transition is checked: no step-up by a weaker method ------------------------------


def test_attack3_a_low_password_cannot_satisfy_a_high_request(nixa, federation, app):  # noqa: ANN001
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, acr_values=HIGH, max_age="0")
        assert "/local" not in page
        r = b.post(f"/interaction/{rid}/local", data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                       "password": citizen.password})
        assert r.status_code == 400 and "location" not in r.headers
        # a low session from another request does not satisfy it either
        _, low_page, _ = login_page(b, portal, acr_values=LOW)
        r = b.post(form_action(low_page, "/local"), data={"csrf": hidden(low_page, "csrf"), "username": citizen.username,
                                                          "password": citizen.password})
        assert "code=" in r.headers["location"]
        again = b.get(f"/interaction/{rid}")
        assert again.status_code == 200 and "/certificate/certificate" in again.text  # still asking for high
    assert [e for e in events(nixa, "login.failed") if e.data.get("reason") == "method_not_offered"]


def test_attack3_a_method_never_shown_cannot_be_posted(nixa, federation, app):  # noqa: ANN001
    """The POST routes accept only what this request's page offered (recorded server-side)."""
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        r, _, _ = authorize(b, portal, acr_values=LOW)
        rid = r.headers["location"].split("/")[2]
        from idp.login.session import csrf_token

        csrf = csrf_token(nixa.csrf_key, b.cookies.get("nixa_browser"), rid)  # valid CSRF, but the page was never shown
        r = b.post(f"/interaction/{rid}/local", data={"csrf": csrf, "username": citizen.username, "password": citizen.password})
        assert r.status_code == 400


# ---- 4. the throttle cannot be sidestepped --------------------------------------------------------


def test_attack4_username_variants_share_one_throttle(nixa, federation, app):  # noqa: ANN001
    citizen = make_citizen(nixa)
    u = citizen.username
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in u)
    variants = [f" {u}", f"{u}\t", u.upper(), f"{u}\u3000", fullwidth, f"\u3000{u.upper()} "]
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal)
        csrf = hidden(page, "csrf")
        for i in range(limit):
            r = b.post(f"/interaction/{rid}/local", data={"csrf": csrf, "username": variants[i % len(variants)], "password": "wrong"})
            assert r.status_code == 401, (i, r.status_code)
        r = b.post(f"/interaction/{rid}/local", data={"csrf": csrf, "username": variants[1], "password": citizen.password})
        assert r.status_code == 429  # the right secret through a variant is throttled like the canonical form


def test_attack4_pin_variants_share_one_throttle_and_no_code_is_sent(nixa, federation, app):  # noqa: ANN001
    victim = fresh_citizen(federation)
    p = victim.pin
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in p)
    variants = [f" {p}", f"{p}\t", f"{p[:3]}\u3000{p[3:]}", fullwidth, f"{p[:6]} {p[6:]}"]
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        csrf = hidden(page, "csrf")
        for i in range(limit):  # guessing the birth date (one of 366 once the PIN gives the year)
            wrong = details(victim, pin=variants[i % len(variants)], date_of_birth=f"{victim.date_of_birth[:4]}-01-{i + 1:02d}")
            if wrong["date_of_birth"] == victim.date_of_birth:
                wrong["date_of_birth"] = f"{victim.date_of_birth[:4]}-12-31"
            r = b.post(f"/interaction/{rid}/challenge/population", data={"csrf": csrf, **wrong})
            assert r.status_code == 401, (i, r.status_code)
        r = b.post(f"/interaction/{rid}/challenge/population", data={"csrf": csrf, **details(victim, pin=variants[2])})
        assert r.status_code == 429
    assert outbox(federation["sms"].base_url, victim.phone) == []  # not one code sent


def _parallel(n: int, fn) -> list[int]:  # noqa: ANN001
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        status = fn(i)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(statuses) == n
    return statuses


def test_attack4_forty_parallel_password_guesses_check_only_the_limit(nixa, federation, app):  # noqa: ANN001
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as b:
        pages = [login_page(b, portal) for _ in range(40)]  # 40 requests, each with its page shown
        statuses = _parallel(40, lambda i: b.post(f"/interaction/{pages[i][0]}/local", data={
            "csrf": hidden(pages[i][1], "csrf"), "username": citizen.username, "password": f"guess-{i}"}).status_code)
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit


def test_attack4_forty_parallel_registry_guesses_check_only_the_limit(nixa, federation, app):  # noqa: ANN001
    victim = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as b:
        pages = [login_page(b, portal, acr_values=SUBSTANTIAL) for _ in range(40)]
        statuses = _parallel(40, lambda i: b.post(f"/interaction/{pages[i][0]}/challenge/population", data={
            "csrf": hidden(pages[i][1], "csrf"), **details(victim, date_of_birth="1900-01-01")}).status_code)
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit


def test_attack4_forty_parallel_directory_guesses_check_only_the_limit(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True, scope="openid profile roles")
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as b:
        pages = [login_page(b, portal, scope="openid profile roles") for _ in range(40)]
        statuses = _parallel(40, lambda i: b.post(f"/interaction/{pages[i][0]}/password/mof", data={
            "csrf": hidden(pages[i][1], "csrf"), "username": "dangthuhuong", "password": f"guess-{i}"}).status_code)
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit


def test_attack4_staff_directory_username_variants_share_one_throttle(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True, scope="openid profile roles")
    limit = nixa.settings.login_attempts_per_window
    variants = [" hoangvanem", "HoangVanEm\t", "hoangvanem\u3000", "ＨＯＡＮＧＶＡＮＥＭ"]
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal, scope="openid profile roles")
        csrf = hidden(page, "csrf")
        for i in range(limit):
            r = b.post(f"/interaction/{rid}/password/mof", data={"csrf": csrf, "username": variants[i % 4], "password": "wrong"})
            assert r.status_code == 401, (i, r.status_code)
        r = b.post(f"/interaction/{rid}/password/mof", data={"csrf": csrf, "username": variants[0], "password": "Em@Demo2024"})
        assert r.status_code == 429


# ---- 5. SMS pumping ---------------------------------------------------------------------------------


def test_attack5_unicode_variants_of_one_number_share_its_sms_limit(nixa, federation, app):  # noqa: ANN001
    national = random_sim()
    e164 = normalize_msisdn(national)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in national)
    arabic = "".join(chr(0x0660 + int(c)) for c in national)
    variants = [national, fullwidth, arabic, f"{national[:4]}\u3000{national[4:]}", e164, f" {national}\t"]
    portal = register_client(nixa, nixa_first_party=True)
    per_destination = nixa.connectors.entry("telecom").instance.config.sends_per_hour
    with own_browser(app) as b:
        for i in range(14):
            rid, page, _ = login_page(b, portal)  # a new request each time (the per-request limit is lower)
            b.post(f"/interaction/{rid}/challenge/telecom", data={"csrf": hidden(page, "csrf"), "phone": variants[i % len(variants)]})
    assert len(outbox(federation["sms"].base_url, e164)) == per_destination


def test_attack5_forty_parallel_sends_to_one_number_stop_at_its_limit(nixa, federation, app):  # noqa: ANN001
    national = random_sim()
    portal = register_client(nixa, nixa_first_party=True)
    per_destination = nixa.connectors.entry("telecom").instance.config.sends_per_hour
    with own_browser(app) as b:
        pages = [login_page(b, portal) for _ in range(40)]
        statuses = _parallel(40, lambda i: b.post(f"/interaction/{pages[i][0]}/challenge/telecom", data={
            "csrf": hidden(pages[i][1], "csrf"), "phone": national}).status_code)
    assert statuses.count(303) == per_destination
    assert len(outbox(federation["sms"].base_url, normalize_msisdn(national))) == per_destination


def test_attack5_one_address_cannot_pump_sms_to_many_numbers(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    per_address = nixa.settings.sms_per_address_per_hour
    with own_browser(app) as b:
        statuses = []
        for _ in range(per_address + 5):  # 25 numbers, one request each
            rid, page, _ = login_page(b, portal)
            statuses.append(b.post(f"/interaction/{rid}/challenge/telecom", data={"csrf": hidden(page, "csrf"),
                                                                                   "phone": random_sim()}).status_code)
    assert statuses.count(303) == per_address and statuses[per_address:] == [429] * 5  # successful sends count too


def test_attack5_one_sign_in_cannot_send_more_than_a_few_codes(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    per_request = nixa.settings.sms_per_request
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal)
        statuses = [b.post(f"/interaction/{rid}/challenge/telecom", data={"csrf": hidden(page, "csrf"), "phone": random_sim()}).status_code
                    for _ in range(per_request + 2)]
    assert statuses.count(303) == per_request and statuses[per_request:] == [429, 429]


# ---- 6. nobody can lock the owner out ---------------------------------------------------------------


def test_attack6_failures_elsewhere_do_not_lock_the_owner_out(nixa, federation, app, http):  # noqa: ANN001
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app) as attacker:
        rid, page, _ = login_page(attacker, portal)
        for _ in range(limit + 2):
            attacker.post(f"/interaction/{rid}/local", data={"csrf": hidden(page, "csrf"), "username": citizen.username, "password": "x"})
        r = attacker.post(f"/interaction/{rid}/local", data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                              "password": citizen.password})
        assert r.status_code == 429
        # failures at a weaker method lock nothing stronger, even from that address
        someone = fresh_citizen(federation)
        _, page, _ = login_page(attacker, portal, acr_values=SUBSTANTIAL)
        r = attacker.post(form_action(page, "/challenge/population"), data={"csrf": hidden(page, "csrf"), **details(someone)})
        assert r.status_code == 303 and r.headers["location"].endswith("/otp")
    with own_browser(app) as owner:
        _, page, _ = login_page(owner, portal)
        r = owner.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                          "password": citizen.password})
        assert r.status_code == 303 and "code=" in r.headers["location"]


def test_attack6_a_shared_address_slows_strangers_but_not_its_regulars(nixa, federation, app):  # noqa: ANN001
    """100 failures from one NAT address: a stranger behind it is throttled (slack, not
    immunity), a browser that signed its account in before is not held by the address limit."""
    nat = "203.0.113.77"
    regular, newcomer = make_citizen(nixa), make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    limit = nixa.settings.login_attempts_per_window
    with own_browser(app, nat) as known:
        _, page, _ = login_page(known, portal)
        r = known.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": regular.username,
                                                          "password": regular.password})
        assert "code=" in r.headers["location"]
        with own_browser(app, nat) as attacker:
            statuses = []
            for i in range(10 * limit):  # many accounts, each under its own limit
                if i % limit == 0:
                    rid, apage, _ = login_page(attacker, portal)
                r = attacker.post(f"/interaction/{rid}/local", data={"csrf": hidden(apage, "csrf"), "username": f"nobody-{i // limit}-{nat}",
                                                                      "password": "guess"})
                statuses.append(r.status_code)
            assert statuses.count(401) == 10 * limit
        with own_browser(app, nat) as stranger:
            _, page, _ = login_page(stranger, portal)
            r = stranger.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": newcomer.username,
                                                                 "password": newcomer.password})
            assert r.status_code == 429  # the address is over its limit for those it does not know
        _, page, _ = login_page(known, portal, prompt="login")
        r = known.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": regular.username,
                                                          "password": regular.password})
        assert r.status_code == 303 and "code=" in r.headers["location"]


def test_attack6_a_new_challenge_does_not_cancel_the_victims_code(nixa, federation, app, http):  # noqa: ANN001
    victim = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as owner:
        _, page, verifier = login_page(owner, portal, acr_values=SUBSTANTIAL)
        r = owner.post(form_action(page, "/challenge/population"), data={"csrf": hidden(page, "csrf"), **details(victim)})
        otp = owner.get(r.headers["location"]).text
        code = latest_code(federation["sms"].base_url, victim.phone)
        with own_browser(app) as attacker:  # knows the victim's details, starts challenges to annoy them
            for _ in range(3):
                _, apage, _ = login_page(attacker, portal, acr_values=SUBSTANTIAL)
                attacker.post(form_action(apage, "/challenge/population"), data={"csrf": hidden(apage, "csrf"), **details(victim)})
        r = owner.post(form_action(otp, "/otp"), data={"csrf": hidden(otp, "csrf"), "otp": code, "action": "verify"})
        r = consent_if_asked(owner, r)
        assert redeem_claims(http, portal, r.headers["location"], verifier)["acr"] == SUBSTANTIAL


# ---- 7. a locked or deceased ID ends everything ---------------------------------------------------


def _set_registry_status(nixa, fed: dict, pin: str, status: str) -> None:  # noqa: ANN001
    httpx.put(f"{fed['registry'].base_url}/_sandbox/citizens/{pin}/status", json={"status": status}, timeout=5).raise_for_status()
    id_status.forget(nixa, pin)  # the test does not wait out the status cache


def test_attack7_a_locked_id_cannot_sign_in_or_refresh_through_any_method(nixa, federation, app, http):  # noqa: ANN001
    citizen = fresh_citizen(federation)
    username = f"locked-{citizen.pin}"
    nixa.people.add_local_account(username, "Pw-" + citizen.pin, {"name": citizen.full_name}, national_id=citizen.pin)
    portal = register_client(nixa, nixa_first_party=True, scope="openid profile offline_access")
    person = person_by_pin(nixa, citizen.pin)
    with own_browser(app) as b:
        _, page, verifier = login_page(b, portal, scope="openid profile offline_access")
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": username, "password": "Pw-" + citizen.pin})
        cb = query_of(r.headers["location"])
        tokens = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": portal.redirect_uri,
                                           "code_verifier": verifier}, auth=(portal.client_id, portal.secret)).json()
        _set_registry_status(nixa, federation, citizen.pin, "locked")
        try:
            refreshed = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                  auth=(portal.client_id, portal.secret))
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
            assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
            # the SSO session is gone: a new request asks to sign in, and the sign-in is refused
            rid, page, _ = login_page(b, portal)
            r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": username,
                                                          "password": "Pw-" + citizen.pin})
            assert r.status_code == 403 and "bị khóa" in r.text and "location" not in r.headers
            assert person_by_pin(nixa, citizen.pin).status == "id_locked"
            changed = events(nixa, "person.status_changed", person.id)
            assert changed and changed[-1].data["status"] == "id_locked" and changed[-1].data["sessions_ended"] >= 1
        finally:
            _set_registry_status(nixa, federation, citizen.pin, "active")
        # the registry lifted it: the person signs in again
        _, page, _ = login_page(b, portal)
        r = b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": username, "password": "Pw-" + citizen.pin})
        assert "code=" in r.headers["location"]
    assert person_by_pin(nixa, citizen.pin).status == "active"


def test_attack7_a_linked_operator_account_of_a_deceased_person_is_refused(nixa, federation, app, http):  # noqa: ANN001
    citizen = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        r, _ = operator_sign_in(b, federation, page, citizen.phone)
        page = b.get(r.headers["location"]).text
        consent_if_asked(b, registry_otp(b, federation, page, citizen, citizen.phone))
    _set_registry_status(nixa, federation, citizen.pin, "deceased")
    try:
        with own_browser(app) as b:
            _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
            r, _ = operator_sign_in(b, federation, page, citizen.phone)  # the operator still knows the SIM
            assert r.status_code == 403 and "đã mất" in r.text
    finally:
        _set_registry_status(nixa, federation, citizen.pin, "active")


# ---- 8. bad input is a clear page, never a 500 --------------------------------------------------


@pytest.mark.parametrize("signed", [
    json.dumps({"certificate_chain": [1, 2], "challenge": "c", "signature": "s", "alg": "ES256"}),
    json.dumps({"certificate_chain": [None], "challenge": "c", "signature": "s", "alg": "ES256"}),
    json.dumps({"certificate_chain": "MIIB", "challenge": "c", "signature": "s", "alg": "ES256"}),
    json.dumps([1, 2, 3]),
    "[" * 100_000 + "]" * 100_000,
    '{"certificate_chain": ["' + "A" * 70_000 + '"]}',
])
def test_attack8_malformed_signing_answers_are_a_clear_page(nixa, federation, app, signed):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=HIGH)
        r = b.post(form_action(page, "/certificate/certificate"), data={"csrf": hidden(page, "csrf")})
        r = b.post(form_action(r.text, "/verify"), data={"csrf": hidden(r.text, "csrf"), "signed": signed})
        assert 400 <= r.status_code < 500 and 'role="alert"' in r.text


def test_attack8_the_certificate_route_on_another_connector_is_a_clear_page(nixa, federation, app):  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        rid, page, _ = login_page(b, portal)
        for path in ("certificate/telecom/verify", "certificate/population", "challenge/certificate", "password/operator",
                     "redirect/telecom", "password/nope"):
            r = b.post(f"/interaction/{rid}/{path}", data={"csrf": hidden(page, "csrf"), "signed": "{}"})
            assert r.status_code == 400, (path, r.status_code)


def test_attack8_proofing_the_same_upstream_account_twice_at_once_ends_on_a_clear_page(nixa, federation, app, http):  # noqa: ANN001
    """Two browsers signed in with the same operator account, both at proofing: the first one
    links it; the second, proving another person's ID, gets a clear page and links nothing."""
    first, second = fresh_citizen(federation), fresh_citizen(federation)
    sim = first.phone
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as a, own_browser(app) as b:
        pages = {}
        for browser in (a, b):
            _, page, _ = login_page(browser, portal, acr_values=SUBSTANTIAL)
            r, _ = operator_sign_in(browser, federation, page, sim)
            assert r.headers["location"].endswith("/proofing")
            pages[browser] = browser.get(r.headers["location"]).text
        r = consent_if_asked(a, registry_otp(a, federation, pages[a], first, first.phone))
        assert "code=" in r.headers["location"]
        r = registry_otp(b, federation, pages[b], second, second.phone)
        assert r.status_code == 409 and 'role="alert"' in r.text
    assert len(links_of(nixa, "operator", person_by_pin(nixa, first.pin).id)) == 1
    second_person = person_by_pin(nixa, second.pin)
    assert second_person is None or not links_of(nixa, "operator", second_person.id)


# ---- 9. the operator answers for the number typed, afresh ---------------------------------------


def test_attack9_the_operator_must_sign_in_the_number_typed(nixa, federation, app):  # noqa: ANN001
    citizen = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL)
        r, url = operator_sign_in(b, federation, page, typed=citizen.phone, confirmed=random_sim())
        assert r.status_code == 403 and "location" not in r.headers
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["prompt"] == "login" and query["max_age"] == "0"  # the operator's own session never answers silently
    assert [e for e in events(nixa, "login.failed") if e.data.get("reason") == "msisdn_mismatch"]


def test_attack9_an_answer_from_an_earlier_upstream_session_is_refused(nixa, federation):  # noqa: ANN001
    from connectors.base import NotAllowed

    connector = nixa.connectors.entry("operator").instance
    _, saved = connector.login_url("s" * 32, federation["callback"], login_hint="0912345678")
    connector.check_fresh({"auth_time": saved["requested_at"]}, saved)  # authenticated for this request: fine
    for stale in ({"auth_time": saved["requested_at"] - 3600}, {}):
        with pytest.raises(NotAllowed) as refused:
            connector.check_fresh(stale, saved)
        assert refused.value.code == "upstream_session_reused"
    assert saved["expected_msisdn"] == "+84912345678"


# ---- 10 is in tests/oidc/test_authorize.py (an unknown acr is refused, naming the supported ones) ---



def test_the_journey_keeps_its_language_through_the_operators_callback(nixa, federation, app):  # noqa: ANN001
    """An English browser sent with ui_locales=vi stays in Vietnamese on every page of the
    journey, the page after the operator's callback included (it carries no ui_locales)."""
    portal = register_client(nixa, nixa_first_party=True)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("198.51.100.252", 50000),
                    headers={"Accept-Language": "en-US,en;q=0.9"}) as b:
        _, page, _ = login_page(b, portal, acr_values=SUBSTANTIAL, ui_locales="vi")
        assert '<html lang="vi">' in page
        r, _ = operator_sign_in(b, federation, page, typed=random_sim(), confirmed=random_sim())
        assert r.status_code == 403 and '<html lang="vi">' in r.text


# ---- 10. a shared computer after sign-out ---------------------------------------------------


def _operator_session_answers(fed: dict, upstream: httpx.Client) -> bool:
    """Ask the operator with prompt=none (OIDC Core §3.1.2.1) whether the `upstream` browser is
    still signed in there: a code means yes, login_required means no."""
    discovery = upstream.get(fed["operator"].discovery_url).json()
    r = upstream.get(discovery["authorization_endpoint"], params={
        "client_id": "nixa", "response_type": "code", "scope": "openid", "redirect_uri": fed["callback"], "prompt": "none",
        "state": "probe", "nonce": "probe", "code_challenge_method": "S256", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"})
    while r.is_redirect and not r.headers["location"].startswith(fed["callback"]):
        r = upstream.get(urljoin(str(r.url), r.headers["location"]))
    answer = parse_qs(urlsplit(r.headers["location"]).query)
    assert "code" in answer or answer.get("error") == ["login_required"], answer
    return "code" in answer


def test_attack10_signing_out_ends_the_operators_session_too(nixa, federation, app, http):  # noqa: ANN001
    """A citizen signs in through the operator on a shared computer and signs out of NIXA: the
    operator's own session must end too (the operator's other services would otherwise still
    know them). NIXA's sign-out sends the browser to the operator's end_session_endpoint
    (RP-Initiated Logout 1.0) with the operator's own ID token as hint, comes back, and its page
    says the operator was asked."""
    citizen = fresh_citizen(federation)
    portal = register_client(nixa, nixa_first_party=True)
    with httpx.Client(timeout=5.0, follow_redirects=False) as upstream, own_browser(app) as b:
        _, page, verifier = login_page(b, portal, acr_values=SUBSTANTIAL)
        r = b.post(form_action(page, "/redirect/operator"), data={"csrf": hidden(page, "csrf"), "login_hint": citizen.phone})
        r = b.get("/login/callback/operator", params=sign_in_at_upstream(r.headers["location"], federation["callback"], browser=upstream))
        page = b.get(r.headers["location"]).text
        r = consent_if_asked(b, registry_otp(b, federation, page, citizen, citizen.phone))
        assert redeem_claims(http, portal, r.headers["location"], verifier)["acr"] == SUBSTANTIAL
        person = person_by_pin(nixa, citizen.pin)
        assert _operator_session_answers(federation, upstream), "signed in at the operator too"

        confirm = b.get("/logout")
        r = b.post(form_action(confirm.text, "/logout/confirm"), data={"csrf": hidden(confirm.text, "csrf"), "decision": "yes",
                                                                         "logout_request": hidden(confirm.text, "logout_request")})
        assert r.status_code == 303 and r.headers["location"].startswith(federation["operator"].issuer), r.headers.get("location")
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["post_logout_redirect_uri"] == [f"{nixa.settings.issuer}/logout/upstream"] and query["id_token_hint"]
        at_operator = upstream.get(r.headers["location"])
        assert at_operator.status_code == 200 and "op.logoutForm" in at_operator.text
        form = _FormParser()
        form.feed(at_operator.text)
        back = upstream.post(urljoin(str(at_operator.url), form.action or ""), data={**form.fields, "logout": "yes"})
        while back.is_redirect and not back.headers["location"].startswith(nixa.settings.issuer):
            back = upstream.get(urljoin(str(back.url), back.headers["location"]))
        assert back.is_redirect, back.text[:300]
        done = b.get(back.headers["location"])
        assert done.status_code == 200 and 'class="upstream-asked"' in done.text and "Nhà mạng" in done.text
        assert [e for e in events(nixa, "logout.upstream", person.id) if e.data["connector"] == "operator"]
        assert not _operator_session_answers(federation, upstream), "the operator's session ended with NIXA's"


def test_attack10_a_forged_return_from_the_operator_is_not_a_sign_out_page(nixa, federation, app):  # noqa: ANN001
    """/logout/upstream with a made-up state, in a browser still signed in, does not pretend to
    have signed anyone out."""
    citizen = make_citizen(nixa)
    portal = register_client(nixa, nixa_first_party=True)
    with own_browser(app) as b:
        _, page, _ = login_page(b, portal)
        consent_if_asked(b, b.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                                       "password": citizen.password}))
        r = b.get("/logout/upstream", params={"state": "made-up"})
        assert r.status_code == 400 and "logged_out" not in r.text and 'role="status"' not in r.text
