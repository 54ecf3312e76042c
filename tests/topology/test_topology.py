"""Two NIXA workers behind nginx on PostgreSQL + Redis (conftest.py): nothing a sign-in, a
session, a key, a throttle or a revocation needs lives inside one worker, and only nginx may
vouch for a client certificate or a client address."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.parse
from http.cookiejar import CookieJar

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import authorize, code_flow, form_action, hidden, make_citizen, query_of, register_client, sign_in_local
from tests.oidc.test_audit import events_for
from tests.topology.conftest import ATTEMPTS, CLIENT_ADDR, CONNECTOR
from tests.topology.harness import REPO_ROOT, worker_env

pytestmark = pytest.mark.scale_out


def requests_counted(worker_url: str, route: str) -> float:
    """Requests to `route` this worker has answered, from its own Prometheus /metrics."""
    text = httpx.get(f"{worker_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("nixa_http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_events(nixa, timeout: float = 10, **where) -> list:  # noqa: ANN001
    """Audit rows matching `where`, once at least one has been written (the writer is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = events_for(nixa, **where)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def id_token_claims(token: str, jwks: dict) -> tuple[dict, dict]:
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256", "EdDSA"])
    return decoded.header, decoded.claims


def test_sign_in_begun_on_a_completes_on_b(topology):
    """/authorize on worker A, the password step and consent on worker B, the code redeemed
    through the pool: the pending request, the CSRF binding and the code live in Redis."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    a, b = topology.doors("a", "b")
    local = "/interaction/{rid}/local"
    before = {name: requests_counted(w.url, local) for name, w in topology.workers.items()}
    r, q, verifier = authorize(a, client)
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.text
    r = sign_in_local(b, r.headers["location"], citizen)
    cb = query_of(r.headers["location"])
    assert cb["state"] == q["state"] and "code" in cb, r.headers["location"]
    tokens = topology.backchannel().post("/token", data={"grant_type": "authorization_code", "code": cb["code"],
                                                         "redirect_uri": client.redirect_uri, "code_verifier": verifier},
                                        auth=(client.client_id, client.secret))
    assert tokens.status_code == 200, tokens.text
    _, claims = id_token_claims(tokens.json()["id_token"], topology.backchannel().get("/jwks").json())
    assert claims["iss"] == topology.issuer and claims["nonce"] == q["nonce"]
    # The password really went to worker B and not to A (each worker counts what it answered).
    after = {name: requests_counted(w.url, local) for name, w in topology.workers.items()}
    assert after["b"] == before["b"] + 1 and after["a"] == before["a"]


def test_logout_on_b_is_seen_by_a(topology):
    """The SSO session signed in on A ends on B: A then asks for a sign-in again, even from a
    browser that kept its old cookies."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    a, b = topology.doors("a", "b")
    rp = topology.backchannel()
    tokens = code_flow(a, rp, client, citizen)
    r, _, _ = authorize(a, client)
    assert "code" in query_of(r.headers["location"]), "SSO on A before the logout"
    kept = CookieJar()
    for cookie in a.cookies.jar:
        kept.set_cookie(cookie)
    r = b.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://rp.example.vn/bye"})
    assert r.status_code in (302, 303) and r.headers["location"].startswith("https://rp.example.vn/bye"), r.text
    r, _, _ = authorize(a, client)
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.headers.get("location")
    replay = topology.browser()
    replay.base_url, replay.cookies = topology.door("a"), kept
    r, _, _ = authorize(replay, client)
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), "the old session cookie still works on A"


def test_key_rotated_beside_a_is_used_and_published_by_b(topology):
    """`nixa keys rotate` with worker A's configuration: within the key ring's refresh, worker B
    signs with the key that was pending and publishes the new pending one."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    (b,) = topology.doors("b")
    rp_b = topology.backchannel("b")
    first = code_flow(b, rp_b, client, citizen)
    old_kids = {k["kid"] for k in rp_b.get("/jwks").json()["keys"]}
    old_kid = id_token_claims(first["id_token"], rp_b.get("/jwks").json())[0]["kid"]
    rotated = subprocess.run([sys.executable, "-m", "admin.cli", "keys", "rotate", "--alg", "ES256"], cwd=REPO_ROOT,
                             env=worker_env(topology.workers["a"].settings), capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0 and "ES256: rotated" in rotated.stdout, rotated.stdout + rotated.stderr
    deadline = time.monotonic() + 15
    while True:
        jwks = rp_b.get("/jwks").json()
        header, _ = id_token_claims(code_flow(b, rp_b, client, citizen)["id_token"], jwks)
        published = {k["kid"] for k in jwks["keys"]}
        if header["kid"] != old_kid and published - old_kids:
            break
        assert time.monotonic() < deadline, ("B still signs with", header["kid"], "publishes", published)
        time.sleep(0.5)
    assert header["kid"] in old_kids, "the new signing key was published before it signed"
    assert old_kid in published, "the retired key stays published while its tokens live"
    rp_a, deadline = topology.backchannel("a"), time.monotonic() + 10
    while published != (on_a := {k["kid"] for k in rp_a.get("/jwks").json()["keys"]}) and time.monotonic() < deadline:
        time.sleep(0.5)  # A's key-ring view refreshes on its own clock
    assert on_a == published


def test_throttle_counters_are_shared(topology):
    """Wrong passwords on A and B add up: at the limit a right one is refused on either."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    a, b = topology.doors("a", "b")
    r, _, _ = authorize(a, client)
    location = r.headers["location"]
    for i in range(ATTEMPTS):
        door = (a, b)[i % 2]
        page = door.get(location).text
        r = door.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username, "password": f"wrong-{i}"})
        assert r.status_code == 401, (i, r.status_code)
    page = a.get(location).text
    r = a.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username, "password": citizen.password})
    assert r.status_code == 429, "each worker counted only its own wrong passwords"
    throttled = wait_for_events(nixa, type="login.throttled", client_id=client.client_id)
    assert throttled and throttled[0].ip == CLIENT_ADDR


def test_revoked_on_a_fails_introspection_and_userinfo_on_b_at_once(topology):
    """RFC 7009 revocation on A; the very next introspection (RFC 7662) and UserInfo on B refuse
    the token: no worker trusts a cache of its own for a revoked token."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    (a,) = topology.doors("a")
    rp_a, rp_b = topology.backchannel("a"), topology.backchannel("b")
    access = code_flow(a, rp_a, client, citizen)["access_token"]
    auth = (client.client_id, client.secret)
    assert rp_b.post("/introspect", data={"token": access}, auth=auth).json()["active"] is True
    assert rp_b.get("/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    assert rp_a.post("/revoke", data={"token": access}, auth=auth).status_code == 200
    assert rp_b.post("/introspect", data={"token": access}, auth=auth).json() == {"active": False}
    assert rp_b.get("/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code == 401


def test_an_attribute_changed_elsewhere_is_released_by_both_workers_at_once(topology):
    """Each worker answers UserInfo from its own copy of the person's attributes: a change
    committed by a third process (this one, on the same PostgreSQL and Redis) is what A and B
    release at their very next request, not an hour later."""
    from connectors.base import VerifiedAttribute

    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    (a,) = topology.doors("a")
    rp_a, rp_b = topology.backchannel("a"), topology.backchannel("b")
    bearer = {"Authorization": f"Bearer {code_flow(a, rp_a, client, citizen)['access_token']}"}
    assert rp_a.get("/userinfo", headers=bearer).json()["name"] == rp_b.get("/userinfo", headers=bearer).json()["name"]
    nixa.people.store_attributes(citizen.person_id, {"name": VerifiedAttribute("name", "Lê Văn Đổi", "population", time.time() + 1)})
    assert rp_a.get("/userinfo", headers=bearer).json()["name"] == "Lê Văn Đổi"
    assert rp_b.get("/userinfo", headers=bearer).json()["name"] == "Lê Văn Đổi"


def test_client_address_is_nginx_s_not_the_client_s_own_claim(topology):
    """NIXA records the address nginx saw (X-Forwarded-For from the trusted proxy, read from the
    right); an X-Forwarded-For the client writes itself is not believed."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    (a,) = topology.doors("pool")
    r, _, _ = authorize(a, client)
    page = a.get(r.headers["location"]).text
    a.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username, "password": "wrong"},
           headers={"X-Forwarded-For": "203.0.113.9"})
    failed = wait_for_events(nixa, type="login.failed", client_id=client.client_id)
    assert [e.ip for e in failed] == [CLIENT_ADDR]


def _certificate_step(browser: httpx.Client, client, headers: dict | None = None) -> tuple[httpx.Response, str]:  # noqa: ANN001
    r, _, verifier = authorize(browser, client, acr_values="urn:nixa:loa:high")
    page = browser.get(r.headers["location"]).text
    r = browser.post(form_action(page, f"/certificate/{CONNECTOR}"), data={"csrf": hidden(page, "csrf")}, headers=headers or {})
    return r, verifier


def test_certificate_sign_in_through_nginx_mtls(topology):
    """The citizen's certificate in the TLS handshake with nginx, nginx forwards it escaped,
    the worker believes it from nginx's address and the sign-in reaches the high level."""
    nixa = topology.nixa
    portal = register_client(nixa, nixa_first_party=True)
    (browser,) = topology.doors("pool", certificate=True)
    r, verifier = _certificate_step(browser, portal)
    assert r.status_code == 303, (r.status_code, r.text[r.text.find('role="alert"'):][:300])
    cb = query_of(r.headers["location"])
    assert "code" in cb, r.headers["location"]
    rp = topology.backchannel()
    tokens = rp.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": portal.redirect_uri,
                                     "code_verifier": verifier}, auth=(portal.client_id, portal.secret))
    assert tokens.status_code == 200, tokens.text
    _, claims = id_token_claims(tokens.json()["id_token"], rp.get("/jwks").json())
    assert claims["acr"] == "urn:nixa:loa:high" and "hwk" in claims["amr"], claims
    succeeded = wait_for_events(nixa, type="login.succeeded", client_id=portal.client_id)
    assert succeeded and succeeded[0].ip == CLIENT_ADDR
    assert succeeded[0].data.get("method") == CONNECTOR, succeeded[0].data


def test_forged_certificate_header_is_dropped_by_nginx(topology):
    """Without a certificate in the handshake, an X-SSL-Client-Cert the browser sends to nginx
    never reaches NIXA: the worker offers the signing statement instead of signing anyone in."""
    nixa = topology.nixa
    portal = register_client(nixa, nixa_first_party=True)
    (browser,) = topology.doors("pool")
    forged = urllib.parse.quote(topology.citizen_cert.cert.read_text(), safe="")
    r, _ = _certificate_step(browser, portal, headers={"X-SSL-Client-Cert": forged})
    assert r.status_code == 200 and 'id="challenge"' in r.text, r.status_code
    assert not events_for(nixa, type="login.succeeded", client_id=portal.client_id)


def test_forged_certificate_header_sent_around_nginx_is_refused(topology):
    """A certificate header sent straight to a worker (from 127.0.0.1, not nginx's 127.0.0.2)
    is refused as untrusted_proxy, audited, and signs no one in, although the certificate is
    genuine: the attacker has the certificate, not its key."""
    nixa = topology.nixa
    portal = register_client(nixa, nixa_first_party=True)
    (browser,) = topology.doors("a")
    r, _, _ = authorize(browser, portal, acr_values="urn:nixa:loa:high")
    page = browser.get(r.headers["location"]).text
    # The same browser's cookies, sent by hand: they are Secure, and the worker speaks plain HTTP.
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    forged = urllib.parse.quote(topology.citizen_cert.cert.read_text(), safe="")
    direct = httpx.post(topology.workers["a"].url + form_action(page, f"/certificate/{CONNECTOR}"), data={"csrf": hidden(page, "csrf")},
                        headers={"Cookie": cookie, "X-SSL-Client-Cert": forged, "X-Forwarded-For": CLIENT_ADDR}, timeout=20)
    assert direct.status_code == 403, (direct.status_code, direct.text[:300])
    assert "location" not in direct.headers
    failed = wait_for_events(nixa, type="login.failed", client_id=portal.client_id)
    assert [(e.data.get("reason"), e.ip) for e in failed] == [("untrusted_proxy", "127.0.0.1")]
    assert not events_for(nixa, type="login.succeeded", client_id=portal.client_id)


def test_the_request_id_is_nginx_s(topology):
    """nginx's $request_id reaches the worker (X-Request-Id from the trusted proxy), comes back on
    the answer and stands in nginx's access log; one a client sends itself is replaced."""
    (browser,) = topology.doors("pool")
    r = browser.get("/.well-known/openid-configuration", headers={"X-Request-Id": "chosen-by-the-client"})
    rid = r.headers["x-request-id"]
    assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", rid), rid
    deadline = time.monotonic() + 5
    log = topology.nginx.directory / "access.log"
    while f"{CLIENT_ADDR} {rid} 200 " not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # nginx writes its log line as the answer ends
    assert f"{CLIENT_ADDR} {rid} 200 " in log.read_text()
