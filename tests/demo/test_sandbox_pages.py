"""The sandbox's developer pages: the personas with how to sign in as each, and the per-client
inspector of its last requests, read from the audit events. They exist in demo mode only; the
inspector shows one client's events and nothing that grants anything."""

from __future__ import annotations

import secrets

import pytest
from starlette.testclient import TestClient

from connectors.personas import PERSONAS
from tests.conftest import code_flow, make_citizen, make_settings, register_client
from tests.login.support import claims_of


@pytest.fixture(scope="module")
def demo(nixa, var_dir, database_url, master_key):  # noqa: ANN001, ANN201
    """NIXA in demo mode on the shared test database and store."""
    from idp.app import Nixa, create_app

    demo_nixa = Nixa(make_settings(var_dir, database_url, master_key, demo=True), store=nixa.store)
    with TestClient(create_app(demo_nixa.settings, nixa=demo_nixa), base_url="http://testserver", follow_redirects=False) as client:
        yield client
    demo_nixa.audit.close()


def test_the_persona_page_lists_each_persona_with_how_to_sign_in(demo) -> None:  # noqa: ANN001
    page = demo.get("/sandbox/personas")
    assert page.status_code == 200
    assert '<html lang="vi">' in page.text and "Công dân giả lập của sandbox" in page.text
    for p in PERSONAS:
        assert f'id="{p.key}"' in page.text and p.name in page.text
        for value in (p.username, p.password, p.pin, p.certificate, p.sim):
            if value:
                assert value in page.text, (p.key, value)
        if p.refusal:
            assert f"<code>{p.refusal}</code>" in page.text
    assert "Bị từ chối: người đã mất." in page.text and "<script" not in page.text
    english = demo.get("/sandbox/personas?lang=en")
    assert '<html lang="en">' in english.text and "Refused: the person is deceased." in english.text
    assert "Choose *" not in english.text and "<em>National population registry</em>" in english.text  # Markdown rendered


def test_the_inspector_shows_a_failed_token_request_and_why_for_that_client_only(demo, nixa) -> None:  # noqa: ANN001
    mine = register_client(nixa)
    other = register_client(nixa)
    wrong_code = secrets.token_urlsafe(24)
    failed = demo.post("/token", data={"grant_type": "authorization_code", "code": wrong_code, "redirect_uri": mine.redirect_uri,
                                       "code_verifier": "v" * 43}, auth=(mine.client_id, mine.secret))
    assert failed.status_code == 400 and failed.json()["error"] == "invalid_grant"
    reference = failed.headers["x-request-id"]
    assert demo.post("/token", data={"grant_type": "password", "username": "x", "password": "y"},
                     auth=(other.client_id, other.secret)).status_code == 400
    # a successful sign-in of mine as well, so the page has a person to show (pseudonymously)
    citizen = make_citizen(nixa)
    with TestClient(demo.app, base_url="http://testserver", follow_redirects=False) as browser:
        tokens = code_flow(browser, demo, mine, citizen)
    assert demo.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200

    listing = demo.get("/sandbox/clients")
    assert listing.status_code == 200 and f'href="/sandbox/clients/{mine.client_id}"' in listing.text
    page = demo.get(f"/sandbox/clients/{mine.client_id}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "token.failed" in text and "error=invalid_grant" in text and "grant_type=authorization_code" in text
    assert reference in text
    assert text.index("claims.released") < text.index("token.issued") < text.index("token.failed")  # newest first
    assert "channel=userinfo" in text
    # not another client's events, nor anything that grants or identifies
    assert other.client_id not in text and "unsupported_grant_type" not in text
    for secret in (wrong_code, mine.secret, tokens["access_token"], tokens["refresh_token"] if "refresh_token" in tokens else wrong_code,
                   tokens["_code"], citizen.username):
        assert secret not in text
    assert citizen.person_id not in text and "Nguyễn Thị Bình" not in text
    assert claims_of(demo, tokens["id_token"])["sub"] in text  # only the pseudonymous sub this client receives


@pytest.mark.parametrize("path", ["/sandbox/personas", "/sandbox/clients", "/sandbox/clients/demo-portal"])
def test_the_sandbox_pages_do_not_exist_outside_demo_mode(browser, nixa, path: str) -> None:  # noqa: ANN001
    assert not nixa.settings.demo
    r = browser.get(path)
    assert r.status_code == 404 and "Công dân giả lập" not in r.text and "token.failed" not in r.text
