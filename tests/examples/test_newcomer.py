"""A new agency developer, end to end, with each sample app of examples/: register the app's
client from its client.json with the CLI (as the README says), start the app as its own process,
and sign in through it as three people at three levels (a NIXA account at low; a registry
citizen by the registry + SMS code at substantial; a certificate holder who signs in at
substantial and steps up to high), read the claims the app gets (ID token and UserInfo), sign
out (RP-initiated, and back-channel when the person signs out at NIXA itself), and see the
documented errors an integrator meets first.

What a newcomer is promised lives in EXPECTED_CLAIMS and EXPECTED_ERRORS below, in one place,
so that they can be pointed at the claims reference and the error catalogue of docs/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import httpx
import pytest

from connectors.population.demo_data import DEMO_CITIZEN, DEMO_PHONE_E164
from tests.conftest import free_port, make_citizen, pkce_pair, query_of
from tests.examples.conftest import ROOT, SAMPLES, Person, SampleApp, pre_json, shown_error
from tests.login.support import certificate_sign_in, registry_otp, unused_registry_citizen

LOW, SUBSTANTIAL, HIGH = "urn:nixa:loa:low", "urn:nixa:loa:substantial", "urn:nixa:loa:high"

# ---- what the docs promise a newcomer (docs/claims.md, docs/errors.md) ---------------------------

# Claims of the ID token every sign-in carries (OIDC Core §2, NIXA's README: "the ID token carries
# sub, acr, amr, auth_time, sid, nonce, at_hash"), and UserInfo's claims per scope the sample apps
# ask for (openid profile email phone address), for the people of this test.
EXPECTED_CLAIMS = {
    "id_token": {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"},
    "userinfo": {
        "openid": {"sub"},
        "profile": {"name", "given_name", "family_name", "birthdate", "gender"},
        "email": {"email"},
        "phone": {"phone_number"},
    },
    # the national ID number is never released without the `national_id` scope (an administrator's authorisation)
    "never_without_authorisation": {"national_id"},
}

# The errors a newcomer meets first, by their reason in docs/errors.md, with the `error` the
# sample app shows (of the authorization or token response); the doc says what causes each and
# how to fix it, and documented_errors() below reads it from there.
EXPECTED_ERRORS = {
    "acr_values_unsupported": "invalid_request",  # acr_values NIXA supports none of (never silently treated as low)
    "consent_declined": "access_denied",  # the person refused the app on NIXA's consent page
    "client_secret_wrong": "invalid_client",  # the app runs with another secret than the one the CLI printed
}
# Errors NIXA shows on its own page (never redirecting to an unvetted address), by reason: the
# message key of idp/i18n, the page carrying the request id as the reference for the help desk.
EXPECTED_ERROR_PAGES = {
    "logout_redirect_not_registered": "error_logout_redirect_not_registered",  # a sign-out sending the person to an address the app never registered
}

DOCS = ROOT / "docs"
# The scopes both sample apps ask for (their client.json).
APP_SCOPES = tuple(json.loads((ROOT / "examples/python-authlib/client.json").read_text(encoding="utf-8"))[0]["scope"].split())


def documented_claims() -> dict[str, set[str]]:
    """docs/claims.md: the claims each scope's table lists."""
    out: dict[str, set[str]] = {}
    scope = None
    for line in (DOCS / "claims.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^## `([^`]+)`", line)
        if m:
            scope = m.group(1)
            out[scope] = set()
        elif scope and (m := re.match(r"^\| `([^`]+)` \|", line)):
            out[scope].add(m.group(1))
    return out


def documented_errors() -> dict[str, set[str]]:
    """docs/errors.md: for each reason, the `error` (or `page`) it answers with."""
    out: dict[str, set[str]] = {}
    for line in (DOCS / "errors.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `([a-z0-9_]+)` \| `?([a-z_]+)`? \|", line)
        if m:
            out.setdefault(m.group(1), set()).add(m.group(2))
    return out


def test_what_this_test_expects_is_what_the_docs_say() -> None:
    claims = documented_claims()
    for scope, names in EXPECTED_CLAIMS["userinfo"].items():
        assert names - {"sub"} <= claims.get(scope, set()), (scope, names - claims.get(scope, set()))
    node = json.loads((ROOT / "examples/node-openid-client/client.json").read_text(encoding="utf-8"))[0]["scope"].split()
    assert tuple(node) == APP_SCOPES
    errors = documented_errors()
    for reason, error in EXPECTED_ERRORS.items():
        assert error in errors.get(reason, set()), (reason, errors.get(reason))
    for reason in EXPECTED_ERROR_PAGES:
        assert "page" in errors.get(reason, set()), reason


# ---- the newcomer's steps -------------------------------------------------------------------------


def register_with_cli(live, database_url: str, var_dir: Path, master_key: str, client_file: Path) -> tuple[str, str]:  # noqa: ANN001
    """`NIXA_MASTER_KEY_FILE=... nixa clients import client.json`, the README's command; returns
    (client_id, the printed secret)."""
    from tests.conftest import REDIS_URL

    nixa = Path(sys.executable).with_name("nixa")
    key_file = client_file.with_name("master.key")  # the demo keeps its throwaway key in var/master.key
    key_file.write_text(master_key)
    env = {"NIXA_DATABASE_URL": database_url, "NIXA_VAR_DIR": str(var_dir), "NIXA_MASTER_KEY_FILE": str(key_file),
           "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": live.url, "NIXA_FETCH_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    done = subprocess.run([str(nixa), "clients", "import", str(client_file)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("created ")]
    client_id = line.split()[1]
    secret = line.split("client_secret=")[1].split()[0]
    return client_id, secret


@pytest.fixture(params=sorted(SAMPLES), scope="module")
def sample(request, live, database_url, var_dir, master_key, tmp_path_factory) -> Iterator[dict]:  # noqa: ANN001
    """One sample app, registered with the CLI from its own client.json and running."""
    example = SAMPLES[request.param]
    url = f"http://127.0.0.1:{free_port()}"
    client_file = tmp_path_factory.mktemp(example.name) / "client.json"
    client_file.write_text(json.dumps(example.client_metadata(url), ensure_ascii=False), encoding="utf-8")
    client_id, secret = register_with_cli(live, database_url, var_dir, master_key, client_file)
    running = {"app": SampleApp(example, live.url, client_id, secret, url), "url": url, "client_id": client_id, "secret": secret,
               "example": example}
    try:
        yield running
    finally:
        running["app"].stop()


def sign_in_at(person: Person, app_url: str, acr: str) -> httpx.Response:
    """Press the app's sign-in (or step-up) button at level `acr`; returns NIXA's page, or the app's
    page when NIXA needed nothing from the person (single sign-on)."""
    return person.get(f"{app_url}/login?{urlencode({'acr': acr})}")


def back_at_app(person: Person, app_url: str) -> httpx.Response:
    page = person.consent()
    assert str(page.url).startswith(app_url + "/"), f"not back at the app: {page.url} {page.status_code} {page.text[:800]}"
    return page


def assert_claims(page: httpx.Response, person: Person, app_url: str, acr: str, scopes: tuple[str, ...], **values: str) -> dict:
    claims = pre_json(page, "id-token-claims")
    assert EXPECTED_CLAIMS["id_token"] <= claims.keys(), EXPECTED_CLAIMS["id_token"] - claims.keys()
    assert claims["acr"] == acr
    info = pre_json(person.get(f"{app_url}/userinfo"), "userinfo")
    assert info["sub"] == claims["sub"]
    for scope in scopes:
        missing = EXPECTED_CLAIMS["userinfo"][scope] - info.keys()
        assert not missing, f"UserInfo lacks {missing} of scope {scope}: {info}"
    # Nothing UserInfo answers is undocumented for the scopes the app asks for.
    promised = {"sub"}.union(*(documented_claims().get(s, set()) for s in APP_SCOPES))
    assert info.keys() <= promised, info.keys() - promised
    assert not EXPECTED_CLAIMS["never_without_authorisation"] & info.keys(), info
    for claim, value in values.items():
        assert info[claim] == value, (claim, info)
    return claims


def sign_out_here(person: Person, app_url: str) -> None:
    """The app's sign-out button: RP-initiated logout at NIXA, back to the app with its state."""
    person.get(app_url + "/")
    page = person.submit("/logout")
    assert str(page.url).startswith(app_url + "/?state="), page.url
    assert "id='signed-out'" in page.text and 'action="/logout"' not in page.text


def test_a_newcomer_signs_in_at_three_levels_through_each_sample_app(sample, live, sources) -> None:  # noqa: ANN001
    app_url = sample["url"]

    # 1. low: a NIXA account (username and password)
    citizen = make_citizen(live.nixa, name="Phạm Minh Tuấn", given_name="Tuấn", family_name="Phạm")
    person = Person(live.url)
    try:
        # what the app sends: code + PKCE (S256), state, nonce, the level asked
        asked = query_of(person.http.get(f"{app_url}/login?{urlencode({'acr': LOW})}").headers["location"])
        assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert len(asked["state"]) >= 16 and len(asked["nonce"]) >= 16 and asked["acr_values"] == LOW
        page = sign_in_at(person, app_url, LOW)
        assert str(page.url).startswith(live.url + "/interaction/"), page.url
        person.submit("/local", username=citizen.username, password=citizen.password)
        page = back_at_app(person, app_url)
        low = assert_claims(page, person, app_url, LOW, ("openid", "profile", "email", "phone"), name="Phạm Minh Tuấn",
                            email=f"{citizen.username}@example.vn")
        assert low["amr"] == ["pwd"]
        sign_out_here(person, app_url)
    finally:
        person.close()

    # 2. substantial: a registry citizen; the details find the record, the code goes to its phone
    pin, name, born, phone = unused_registry_citizen(sources["registry_db"])
    person = Person(live.url)
    try:
        page = sign_in_at(person, app_url, SUBSTANTIAL)
        person.follow(registry_otp(person.http, sources, page.text, SimpleNamespace(pin=pin, full_name=name, date_of_birth=born), phone))
        page = back_at_app(person, app_url)
        assert_claims(page, person, app_url, SUBSTANTIAL, ("openid", "profile"), name=name, birthdate=born)

        # back-channel logout: the person signs out at NIXA itself (its own logout page); NIXA
        # tells the app, which verifies the logout token and ends its session for that sid
        person.get(f"{live.url}/logout")
        person.submit("/logout/confirm", decision="yes")
        deadline = time.monotonic() + 30
        while "id='id-token-claims'" in person.get(app_url + "/").text:
            assert time.monotonic() < deadline, f"the app was never told of the logout (back-channel):\n{sample['app'].output()[-3000:]}"
            time.sleep(0.3)
        assert 'action="/login"' in person.page.text
    finally:
        person.close()

    # 3. high: a certificate holder (the demo citizen): substantial first, then a step-up
    person = Person(live.url)
    try:
        page = sign_in_at(person, app_url, SUBSTANTIAL)
        person.follow(registry_otp(person.http, sources, page.text, DEMO_CITIZEN, DEMO_PHONE_E164))
        page = back_at_app(person, app_url)
        first = pre_json(page, "id-token-claims")
        assert first["acr"] == SUBSTANTIAL
        assert f'value="{HIGH}"' in page.text  # the app offers the step-up
        page = sign_in_at(person, app_url, HIGH)
        assert str(page.url).startswith(live.url + "/interaction/") and "/certificate/" in page.text, page.url
        person.follow(certificate_sign_in(person.http, sources, page.text, "an", origin=live.url))
        page = back_at_app(person, app_url)
        high = assert_claims(page, person, app_url, HIGH, ("openid", "profile"), name=DEMO_CITIZEN.full_name,
                             birthdate=DEMO_CITIZEN.date_of_birth)
        assert high["sub"] == first["sub"] and high["sid"] == first["sid"]  # the same person and NIXA session, one level up
        assert not first.keys() & {"national_id"}
        sign_out_here(person, app_url)
    finally:
        person.close()


def audited_reason(live, page: httpx.Response) -> str | None:  # noqa: ANN001
    """The reason NIXA's audit recorded for the refusal whose reference (request_id) came back
    to the app's redirect URI."""
    from sqlalchemy import select

    from idp.store.models import AuditEvent

    rid = query_of(str(page.url)).get("request_id")
    assert rid, page.url
    with live.nixa.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == "request.rejected").order_by(AuditEvent.id.desc()).limit(200)).all()
    return next((r.data.get("reason") for r in rows if r.data.get("request_id") == rid), None)


def test_a_newcomer_sees_the_documented_errors_through_each_sample_app(sample, live) -> None:  # noqa: ANN001
    app_url, client_id = sample["url"], sample["client_id"]
    citizen = make_citizen(live.nixa, name="Đỗ Thu Trang")
    person = Person(live.url)
    try:
        # a sign-out to an address the app did not register: NIXA's own page, with a reference
        page = person.get(f"{live.url}/logout?" + urlencode({"client_id": client_id, "post_logout_redirect_uri": "https://evil.example/",
                                                             "state": "s"}))
        assert page.status_code == 400 and str(page.url).startswith(live.url + "/logout"), page.url
        texts = json.loads((ROOT / "idp/i18n/vi.json").read_text(encoding="utf-8"))
        assert texts[EXPECTED_ERROR_PAGES["logout_redirect_not_registered"]] in page.text
        assert page.headers["x-request-id"] in page.text

        # acr_values of which NIXA supports none: refused, back at the app, never treated as low
        _, challenge = pkce_pair()
        page = person.get(f"{live.url}/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": f"{app_url}/callback", "scope": "openid",
            "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256",
            "acr_values": "urn:example:loa:gold"}))
        assert page.status_code == 400 and str(page.url).startswith(app_url + "/callback?")
        assert shown_error(page) == EXPECTED_ERRORS["acr_values_unsupported"]
        assert audited_reason(live, page) == "acr_values_unsupported"  # the reference leads to the documented reason

        # the person refuses the app on the consent page
        page = sign_in_at(person, app_url, LOW)
        person.submit("/local", username=citizen.username, password=citizen.password)
        page = person.submit("/consent", decision="deny")
        assert str(page.url).startswith(app_url + "/callback?"), page.url
        assert shown_error(page) == EXPECTED_ERRORS["consent_declined"]
        assert audited_reason(live, page) == "consent_declined"
        assert "id='id-token-claims'" not in person.get(app_url + "/").text

        # the app restarted with a wrong secret: the code exchange is refused, nobody is signed in
        sample["app"].stop()
        sample["app"] = SampleApp(sample["example"], live.url, client_id, sample["secret"] + "-typo", app_url)
        page = sign_in_at(person, app_url, LOW)  # NIXA's session from above: no sign-in page
        page = person.consent()
        assert str(page.url).startswith(app_url + "/callback?"), page.url
        assert shown_error(page) == EXPECTED_ERRORS["client_secret_wrong"]
        assert "id='id-token-claims'" not in person.get(app_url + "/").text
    finally:
        person.close()
        sample["app"].stop()
        sample["app"] = SampleApp(sample["example"], live.url, client_id, sample["secret"], app_url)


def test_each_sample_app_verifies_the_logout_tokens_it_is_sent(sample, live) -> None:  # noqa: ANN001
    """Only a logout token NIXA signed for this app, typed logout+jwt, with the back-channel event
    and a sid, is accepted (200), once; anything else is 400, so nobody can sign people out of an app."""
    import secrets as random
    import time as clock

    from joserfc import jwt
    from joserfc.jwk import ECKey

    from idp.oidc.logout import BACKCHANNEL_LOGOUT_EVENT

    client = live.nixa.clients.get(sample["client_id"])
    kid = live.nixa.keys.active_kid(client.signing_alg)
    now = int(clock.time())
    good = {"iss": live.url, "sub": "someone", "aud": sample["client_id"], "iat": now, "exp": now + 120,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}}, "sid": random.token_urlsafe(8)}

    def post(token: str) -> int:
        return httpx.post(sample["url"] + "/backchannel-logout", data={"logout_token": token}, timeout=10).status_code

    def nixa_signed(typ: str = "logout+jwt", **changes) -> str:  # noqa: ANN003
        claims = {**good, "jti": random.token_urlsafe(12), **changes}
        return live.nixa.keys.sign({k: v for k, v in claims.items() if v is not None}, client.signing_alg, typ=typ)

    forged_key = ECKey.generate_key("P-256", parameters={"kid": kid})
    forged = jwt.encode({"alg": "ES256", "kid": kid, "typ": "logout+jwt"}, {**good, "jti": "forged"}, forged_key)
    refused = {
        "not a JWT": "not-a-token",
        "signed by another key under NIXA's kid": forged,
        "an ID-token type": nixa_signed(typ="JWT"),
        "for another app": nixa_signed(aud="another-app"),
        "from another issuer": nixa_signed(iss="https://evil.example"),
        "without the event": nixa_signed(events={}),
        "with a nonce": nixa_signed(nonce="n"),
        "without sid": nixa_signed(sid=None),
        "expired": nixa_signed(iat=now - 900, exp=now - 600),
    }
    for what, token in refused.items():
        assert post(token) == 400, what
    genuine = nixa_signed()
    assert post(genuine) == 200
    assert post(genuine) == 400  # a replay
