"""Every sandbox persona (connectors/personas.py, docs/personas.md) signs in, or is refused,
exactly as documented: through NIXA's own sign-in pages, against the real sandboxes of this
folder's federation (registry, operator SMS and OpenID sign-in, CA with OCSP/CRL, OpenLDAP),
seeded from the same persona list the demo seeds from. A refusal must be the documented one:
the `login.failed` audit event of this client carries the persona's reason."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select

from connectors.personas import PERSONAS, Persona
from connectors.telecom.phone import normalize_msisdn
from idp.demo.personas import seed_local_accounts
from idp.store.models import AuditEvent, LinkedIdentity
from tests.conftest import authorize, form_action, hidden, query_of, register_client
from tests.connectors.oidc.upstream_browser import sign_in_at_upstream
from tests.connectors.telecom.outbox import latest_code, outbox
from tests.login.support import certificate_sign_in, claims_of, registry_otp
from tests.login.test_identity_assurance import own_browser

METHOD_LEVEL = {"local": "low", "staff": "low", "registry": "substantial", "operator": "substantial", "certificate": "high"}


@pytest.fixture(scope="module")
def seeded(nixa, federation):  # noqa: ANN001, ANN201
    seed_local_accounts(nixa)  # what the demo seeds; the sandboxes are seeded by the federation fixture
    return federation


def _password(b, location: str, page: str, p: Persona, path: str):  # noqa: ANN001, ANN202
    return b.post(form_action(page, path), data={"csrf": hidden(page, "csrf"), "username": p.username, "password": p.password})


def _local(b, fed: dict, location: str, page: str, p: Persona):  # noqa: ANN001, ANN202
    r = _password(b, location, page, p, "/local")
    if not p.totp_secret:
        return r
    assert r.status_code == 303 and r.headers["location"] == location, (r.status_code, r.text[:300])  # the second step
    page = b.get(location).text
    return b.post(form_action(page, "/totp"), data={"csrf": hidden(page, "csrf"), "code": pyotp.TOTP(p.totp_secret).now()})


def _staff(b, fed: dict, location: str, page: str, p: Persona):  # noqa: ANN001, ANN202
    return _password(b, location, b.get(location + "/staff").text, p, "/password/")


def _registry(b, fed: dict, location: str, page: str, p: Persona):  # noqa: ANN001, ANN202
    r = b.post(form_action(page, "/challenge/population"), data={"csrf": hidden(page, "csrf"), "pin": p.pin, "full_name": p.typed_name,
                                                                 "date_of_birth": p.date_of_birth})
    if p.refusal:
        return r
    assert r.status_code == 303 and r.headers["location"].endswith("/otp"), r.text
    otp_page = b.get(r.headers["location"]).text
    code = latest_code(fed["sms"].base_url, normalize_msisdn(p.phone_on_record))  # as the holder of the phone on record reads it
    return b.post(form_action(otp_page, "/otp"), data={"csrf": hidden(otp_page, "csrf"), "otp": code, "action": "verify"})


def _certificate(b, fed: dict, location: str, page: str, p: Persona):  # noqa: ANN001, ANN202
    return certificate_sign_in(b, fed, page, label=p.certificate)


def _operator(b, fed: dict, location: str, page: str, p: Persona):  # noqa: ANN001, ANN202
    r = b.post(form_action(page, "/redirect/operator"), data={"csrf": hidden(page, "csrf"), "login_hint": p.sim})
    assert r.status_code == 303 and r.headers["location"].startswith(fed["operator"].issuer), r.text
    r = b.get("/login/callback/operator", params=sign_in_at_upstream(r.headers["location"], fed["callback"]))
    assert r.status_code == 303, r.text
    if r.headers["location"].endswith("/proofing"):  # the first time (another test may have linked this SIM already)
        proofing = b.get(r.headers["location"]).text
        r = registry_otp(b, fed, proofing, citizen=p.proof, phone=normalize_msisdn(p.proof.phone))
    return r


SIGN_IN = {"local": _local, "staff": _staff, "registry": _registry, "certificate": _certificate, "operator": _operator}


def _last_failure(nixa, client_id: str) -> str | None:  # noqa: ANN001
    with nixa.db.session() as s:
        data = s.scalar(select(AuditEvent.data).where(AuditEvent.type == "login.failed", AuditEvent.client_id == client_id)
                        .order_by(AuditEvent.id.desc()).limit(1))
    return data.get("reason") if data else None


def _operator_links(nixa) -> set[tuple[str, str]]:  # noqa: ANN001
    with nixa.db.session() as s:
        return {(row.person_id, row.id) for row in s.scalars(select(LinkedIdentity).where(LinkedIdentity.connector_id == "operator"))}


@pytest.fixture()
def leaves_operator_links_as_found(nixa):  # noqa: ANN001, ANN201
    """An operator persona's first sign-in links the SIM; other tests of the run expect the demo
    citizen's SIM unlinked (their first time), so the link this test made is undone."""
    before = _operator_links(nixa)
    yield
    for person_id, link_id in _operator_links(nixa) - before:
        assert nixa.people.unlink(person_id, link_id)


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.key)
@pytest.mark.usefixtures("leaves_operator_links_as_found")
def test_each_persona_signs_in_or_is_refused_as_documented(nixa, seeded, app, http, persona: Persona) -> None:  # noqa: ANN001
    portal = register_client(nixa, nixa_first_party=True, scope="openid profile")
    level = persona.level or METHOD_LEVEL[persona.method]
    with own_browser(app) as b:
        r, _, verifier = authorize(b, portal, scope="openid profile", acr_values=f"urn:nixa:loa:{level}", max_age="0")
        location = r.headers["location"]
        assert location.startswith("/interaction/"), location
        r = SIGN_IN[persona.method](b, seeded, location, b.get(location).text, persona)

    if persona.refusal:
        assert r.status_code in (401, 403), (r.status_code, r.text[:300])
        assert "code=" not in r.headers.get("location", "")
        assert _last_failure(nixa, portal.client_id) == persona.refusal
        return
    assert r.status_code == 303 and "code=" in r.headers["location"], (r.status_code, r.text[:300])
    tokens = http.post("/token", data={"grant_type": "authorization_code", "code": query_of(r.headers["location"])["code"],
                                       "redirect_uri": portal.redirect_uri, "code_verifier": verifier},
                       auth=(portal.client_id, portal.secret))
    assert tokens.status_code == 200, tokens.text
    assert claims_of(http, tokens.json()["id_token"])["acr"] == f"urn:nixa:loa:{persona.level}"
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}).json()
    assert info.get("name") == persona.name, info
    if persona.sim and persona.proof and normalize_msisdn(persona.sim) != normalize_msisdn(persona.proof.phone):
        # the SIM registered to someone else never receives the code that proves the ID
        assert outbox(seeded["sms"].base_url, normalize_msisdn(persona.sim)) == []
