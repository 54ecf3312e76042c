"""Bounded random input at every endpoint: whatever arrives, the answer is a 4xx (or a normal
answer), never a 5xx. Seeded, so a failure reproduces."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ENDPOINTS = [("POST", "/token"), ("POST", "/introspect"), ("POST", "/revoke"), ("POST", "/par"), ("GET", "/authorize"),
             ("POST", "/authorize"), ("GET", "/userinfo"), ("POST", "/userinfo"), ("GET", "/logout"), ("POST", "/logout"),
             ("POST", "/logout/confirm"), ("GET", "/login/callback/operator"), ("GET", "/interaction/x"),
             ("POST", "/interaction/x/local"), ("POST", "/interaction/x/consent"), ("POST", "/interaction/x/cancel"),
             ("POST", "/interaction/x/password/population"), ("POST", "/interaction/x/challenge/telecom"),
             ("GET", "/interaction/x/otp"), ("POST", "/interaction/x/otp"), ("POST", "/interaction/x/redirect/operator"),
             ("POST", "/interaction/x/certificate/certificate"), ("POST", "/interaction/x/certificate/certificate/verify"),
             ("GET", "/interaction/x/proofing"), ("GET", "/.well-known/openid-configuration"), ("GET", "/jwks"), ("GET", "/")]
NAMES = ["grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier", "refresh_token", "scope", "token",
         "token_type_hint", "client_assertion", "client_assertion_type", "response_type", "state", "nonce", "prompt", "max_age",
         "acr_values", "request_uri", "request", "code_challenge", "code_challenge_method", "id_token_hint",
         "post_logout_redirect_uri", "ui_locales", "login_hint", "csrf", "decision", "logout_request", "access_token"]
VALUES = ["authorization_code", "refresh_token", "client_credentials", "openid", "S256", "plain", "none", "login", "-1", "0",
          "99999999999999999999", "urn:ietf:params:oauth:request_uri:x", "https://rp.example.vn/callback", "eyJhbGciOiJub25lIn0.e30.",
          "a.b.c", "%", "%ZZ", "%FF", "\u0000", "\ud7ff", "𝓝𝓘𝓧𝓐", "' OR 1=1 --", "<script>", "x" * 5000]


def _value(rng: random.Random, known: list[str] | None = None) -> str:
    if known and rng.random() < 0.3:
        return rng.choice(known)
    if rng.random() < 0.5:
        return rng.choice(VALUES)
    return "".join(rng.choice(string.printable + "éữ\x00") for _ in range(rng.randint(0, 40)))


def _body(rng: random.Random, known: list[str]) -> tuple[bytes, dict[str, str]]:
    pairs = [(rng.choice(NAMES), _value(rng, known)) for _ in range(rng.randint(0, 8))]
    from urllib.parse import urlencode

    raw = urlencode(pairs).encode()
    if rng.random() < 0.2:
        raw += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))  # not UTF-8, not form-encoded
    headers = {"content-type": rng.choice(["application/x-www-form-urlencoded", "application/json", "text/plain",
                                           "application/x-www-form-urlencoded; charset=latin1", ""])}
    if rng.random() < 0.3:
        headers["authorization"] = rng.choice(["Basic " + _value(rng, known), "Bearer " + _value(rng, known), "Basic Og==", "Digest x"])
    return raw, headers


@pytest.mark.parametrize("seed", range(8))
def test_random_requests_never_get_a_server_error(app, nixa, seed: int) -> None:  # noqa: ANN001
    import re

    from starlette.testclient import TestClient

    from tests.conftest import authorize, register_client

    rng = random.Random(seed)
    client = register_client(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False) as c:
        # A real pending sign-in in this browser, so random input also reaches past the CSRF check.
        r, _, _ = authorize(c, client)
        rid = r.headers["location"].rsplit("/", 1)[-1]
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get(r.headers["location"]).text).group(1)
        known = [csrf, client.client_id, client.secret or "", client.redirect_uri, rid]
        for _ in range(150):
            method, path = rng.choice(ENDPOINTS)
            if rng.random() < 0.6:
                path = path.replace("/interaction/x", f"/interaction/{rid}")
            raw, headers = _body(rng, known)
            headers = {k: v for k, v in headers.items() if v.isascii() and "\x00" not in v and "\n" not in v and "\r" not in v}
            if method == "GET":
                from urllib.parse import quote_from_bytes

                r = c.get(path + "?" + quote_from_bytes(raw, safe="=&%+"), headers=headers)
            else:
                r = c.post(path, content=raw, headers=headers)
            assert r.status_code < 500, (method, path, raw[:200], headers, r.status_code, r.text[:300])


def test_a_store_that_is_down_is_a_clear_answer_not_a_stack_trace(nixa) -> None:  # noqa: ANN001
    """An outage must still answer in the protocol's terms: OAuth `temporarily_unavailable` JSON
    with Retry-After for API callers, the friendly page for people, the reference audited.
    (Provoked by a real Redis store whose server is down.)"""
    from starlette.testclient import TestClient

    from idp.app import create_app
    from tests.conftest import register_client

    from idp.store.ephemeral import RedisStore
    from tests.conftest import free_port

    client = register_client(nixa)
    real = nixa.store
    app = create_app(nixa.settings, nixa=nixa)
    nixa.store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        with TestClient(app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False) as c:
            r = c.post("/token", data={"grant_type": "authorization_code", "code": "x", "redirect_uri": client.redirect_uri},
                       auth=(client.client_id, client.secret))
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable" and "Traceback" not in r.text
            assert r.headers["retry-after"] == "5"
            from tests.oidc.test_refusals import audited_reference

            assert audited_reference(nixa, r).data["reason"] == "temporarily_unavailable"  # the reference is in the audit log
            page = c.get("/authorize", params={"client_id": client.client_id, "redirect_uri": client.redirect_uri,
                                               "response_type": "code", "scope": "openid", "code_challenge": "a" * 43,
                                               "code_challenge_method": "S256"})
            assert page.status_code == 503 and "Traceback" not in page.text and page.headers["retry-after"] == "5"
            assert json.loads((ROOT / "idp/i18n/vi.json").read_text(encoding="utf-8"))["error_unavailable"] in page.text
            assert page.headers["x-request-id"] in page.text
    finally:
        nixa.store = real


def test_a_store_that_only_reads_is_an_outage_answer_not_a_bug(nixa, tmp_path) -> None:  # noqa: ANN001
    """During a failover the address NIXA writes to can be a replica for a moment: Redis answers
    READONLY to every write. That is the store being unavailable, not a bug: 503
    `temporarily_unavailable` with Retry-After, never a 500. (A real redis-server, a replica of
    a master that is not there, so read-only.)"""
    from starlette.testclient import TestClient

    from idp.app import create_app
    from idp.store.ephemeral import RedisStore
    from tests.conftest import free_port, register_client
    from tests.store.test_sentinel import RedisProcess

    client = register_client(nixa)
    replica = RedisProcess(tmp_path / "replica", "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(free_port()))
    real = nixa.store
    app = create_app(nixa.settings, nixa=nixa)
    nixa.store = RedisStore(f"redis://127.0.0.1:{replica.port}/0")
    try:
        with TestClient(app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False) as c:
            r = c.post("/par", data={"response_type": "code", "redirect_uri": client.redirect_uri, "scope": "openid",
                                     "code_challenge": "a" * 43, "code_challenge_method": "S256"},
                       auth=(client.client_id, client.secret))
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
            assert r.headers["retry-after"] == "5"
    finally:
        nixa.store = real
        replica.stop()
