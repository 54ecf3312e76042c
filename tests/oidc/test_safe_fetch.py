"""Server-side fetches of URLs someone else chose (jwks_uri, sector_identifier_uri, upstream
discovery) go through one policy: https only outside loopback, no private, loopback or
link-local address unless the deployment allows it, the resolved address checked and
connected to, no redirects, a size cap, a negative cache (issue 7, item 7)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from connectors.base import UpstreamUnavailable
from connectors.resilience import ResilientHttp
from connectors.safe_fetch import MAX_DOCUMENT_BYTES, FetchPolicy, FetchRefused, fetch_json
from idp.oidc.clients import ClientRegistry, InvalidClientMetadata
from idp.store.models import AuditEvent
from tests.conftest import make_settings, register_client, uid
from tests.oidc.test_private_key_jwt import claims_for, sign, token_with_assertion

KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"})
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {}
SEEN: list[tuple[str, str]] = []  # (path, Host header) of every request the server got


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        SEEN.append((self.path, self.headers.get("Host", "")))
        status, headers, body = ROUTES.get(self.path, (404, {}, b"{}"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def docs() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def serve(path: str, body: object, status: int = 200, headers: dict[str, str] | None = None) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ROUTES[path] = (status, {"Content-Type": "application/json", **(headers or {})}, raw)
    return path


def requests_to(path: str) -> int:
    return sum(1 for p, _ in SEEN if p == path)


def http(policy: FetchPolicy, **kw) -> ResilientHttp:  # noqa: ANN003
    return ResilientHttp(name="test", policy=policy, max_bytes=MAX_DOCUMENT_BYTES, timeout=2, **kw)


STRICT = FetchPolicy()  # the production default: public addresses only
LOOPBACK = FetchPolicy.allowing([], loopback=True)


# ---- the policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/jwks", "https://[::1]/jwks", "https://10.1.2.3/jwks", "https://192.168.0.7/jwks",
    "https://169.254.169.254/latest/meta-data", "https://[fc00::1]/jwks", "https://[fe80::1]/jwks", "https://[::ffff:127.0.0.1]/jwks",
    "https://[::ffff:10.0.0.1]/jwks", "https://100.64.0.1/jwks", "https://0.0.0.0/jwks", "https://localhost/jwks",
    "https://api.localhost/jwks",
])
def test_private_loopback_and_link_local_addresses_are_refused_by_default(url):
    with pytest.raises(FetchRefused, match="does not fetch from"):
        STRICT.pin(url)


@pytest.mark.parametrize("url", ["http://jwks.thue.example.vn/jwks", "http://93.184.216.34/jwks", "ftp://jwks.example.vn/x",
                                 "https://user:pw@jwks.example.vn/jwks", "not a url"])
def test_plain_http_outside_loopback_and_odd_urls_are_refused(url):
    public = FetchPolicy(resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(FetchRefused):
        public.pin(url)


@pytest.mark.parametrize("answers", [["10.20.30.40"], ["127.0.0.1"], ["93.184.216.34", "192.168.1.1"], ["::1"], ["fd12::5"]])
def test_a_name_resolving_to_a_private_address_is_refused(answers):
    """DNS is the attacker's: a public-looking name may point inside. Every address counts."""
    resolver = FetchPolicy(resolver=lambda host, port: answers)
    with pytest.raises(FetchRefused, match="jwks.attacker.example"):
        resolver.pin("https://jwks.attacker.example/jwks")


def test_a_public_name_is_pinned_to_the_address_that_was_checked():
    pinned = FetchPolicy(resolver=lambda host, port: ["93.184.216.34"]).pin("https://jwks.thue.example.vn:8443/keys?v=1")
    assert pinned.url == "https://93.184.216.34:8443/keys?v=1"
    assert pinned.host_header == "jwks.thue.example.vn:8443" and pinned.sni_hostname == "jwks.thue.example.vn"


def test_an_allowed_network_is_reachable_and_only_that_one():
    internal = FetchPolicy.allowing(["10.20.0.0/16"], resolver=lambda host, port: ["10.20.1.5"])
    assert internal.pin("https://idp.bo-tai-chinh.internal/.well-known/openid-configuration").url.startswith("https://10.20.1.5/")
    with pytest.raises(FetchRefused):
        internal.pin("https://10.30.0.1/jwks")
    with pytest.raises(FetchRefused, match="https"):
        internal.pin("http://10.20.1.5/jwks")  # allowed network, still https only outside loopback


# ---- fetches through the resilience layer ---------------------------------------------------------


def test_loopback_is_refused_without_the_setting_and_nothing_is_sent(docs):
    path = serve(f"/{uid('jwks')}", {"keys": []})
    with pytest.raises(FetchRefused):
        fetch_json(http(STRICT), docs + path, "jwks_uri")
    assert requests_to(path) == 0
    assert fetch_json(http(LOOPBACK), docs + path, "jwks_uri") == {"keys": []}  # allowed explicitly: fine


def test_a_name_is_fetched_from_the_checked_address_with_its_host_header(docs):
    port = docs.rsplit(":", 1)[1]
    path = serve(f"/{uid('jwks')}", {"keys": []})
    asked: list[str] = []
    resolver = FetchPolicy.allowing([], loopback=True, resolver=lambda host, p: asked.append(host) or ["127.0.0.1"])
    assert fetch_json(http(resolver), f"http://localhost:{port}{path}", "jwks_uri") == {"keys": []}
    # Resolved once, by the policy; the connection went to that address, the name in Host.
    assert asked == ["localhost"] and (path, f"localhost:{port}") in SEEN


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_body_is_refused(docs, declared):
    body = json.dumps({"keys": [], "padding": "x" * (MAX_DOCUMENT_BYTES + 10)}).encode()
    path = serve(f"/{uid('big')}", body, headers={"Content-Length": str(len(body))} if declared else {})
    with pytest.raises(FetchRefused, match="larger than"):
        fetch_json(http(LOOPBACK), docs + path, "jwks_uri")


def test_a_redirect_to_a_private_address_is_not_followed(docs):
    path = serve(f"/{uid('moved')}", b"", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(FetchRefused, match="redirect"):
        fetch_json(http(LOOPBACK), docs + path, "jwks_uri")
    assert requests_to(path) == 1


def test_a_failed_fetch_is_remembered_for_a_moment(docs):
    path = serve(f"/{uid('down')}", {"error": "down"}, status=503)
    client = http(LOOPBACK, retries=0, negative_ttl=30)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            fetch_json(client, docs + path, "jwks_uri")
    assert requests_to(path) == 1  # the next ones were answered from memory


def test_one_hosts_failures_do_not_open_the_breaker_for_another(docs):
    down = serve(f"/{uid('down')}", {}, status=500)
    up = serve(f"/{uid('up')}", {"keys": []})
    client = http(LOOPBACK, retries=0, breaker_per_host=True)
    port = docs.rsplit(":", 1)[1]
    for _ in range(client.breaker.threshold + 1):
        with pytest.raises(UpstreamUnavailable):
            fetch_json(client, f"http://127.0.0.2:{port}{down}", "jwks_uri")  # the breaker of 127.0.0.2 opens
    assert fetch_json(client, docs + up, "jwks_uri") == {"keys": []}


# ---- the callers: client registration and private_key_jwt --------------------------------------


@pytest.fixture(scope="module")
def strict_clients(nixa) -> ClientRegistry:  # noqa: ANN001
    """The client registry as a production deployment has it: the fetch setting left empty."""
    return ClientRegistry(nixa.db, nixa.clients.hasher, outbound=http(STRICT))


def _metadata(**fields) -> dict:  # noqa: ANN003
    return {"client_id": uid("client"), "redirect_uris": ["https://a.thue.example.vn/cb"], **fields}


def test_a_loopback_jwks_uri_is_invalid_client_metadata_without_the_setting(strict_clients, docs):
    with pytest.raises(InvalidClientMetadata, match="jwks_uri: .*does not fetch from") as caught:
        strict_clients.upsert(_metadata(token_endpoint_auth_method="private_key_jwt", jwks_uri=f"{docs}/jwks"))
    assert caught.value.error == "invalid_client_metadata"


def test_a_loopback_sector_identifier_uri_is_refused_without_the_setting(strict_clients, docs):
    uris = ["https://a.thue.example.vn/cb", "https://b.thue.example.vn/cb"]
    path = serve(f"/{uid('sector')}", uris)
    with pytest.raises(InvalidClientMetadata, match="sector_identifier_uri: .*does not fetch from"):
        strict_clients.upsert(_metadata(redirect_uris=uris, sector_identifier_uri=docs + path))
    assert requests_to(path) == 0


def test_a_sector_identifier_uri_that_redirects_is_refused(nixa, docs):  # noqa: ANN001
    path = serve(f"/{uid('sector')}", b"", status=301, headers={"Location": "http://10.0.0.5/sector.json"})
    with pytest.raises(InvalidClientMetadata, match="redirect"):
        register_client(nixa, redirect_uris=["https://a.thue.example.vn/cb", "https://b.thue.example.vn/cb"],
                        redirect_uri="https://a.thue.example.vn/cb", sector_identifier_uri=docs + path)


def test_a_private_key_jwt_client_whose_jwks_uri_became_forbidden_is_invalid_client_and_audited(nixa, var_dir, database_url,  # noqa: ANN001
                                                                                                 master_key, docs):
    """Registered while its network was allowed; a worker whose deployment does not allow it
    refuses to fetch: invalid_client at /token, a fetch.refused event, nothing sent."""
    from starlette.testclient import TestClient

    from idp.app import Nixa, create_app

    path = serve(f"/{uid('jwks')}", {"keys": [KEY.as_dict(private=False)]})
    client = register_client(nixa, token_endpoint_auth_method="private_key_jwt", jwks_uri=docs + path)
    strict = Nixa(make_settings(var_dir, database_url, master_key, fetch_allowed_networks=[]), store=nixa.store)
    assertion = sign(KEY, claims_for(client.client_id))
    with TestClient(create_app(strict.settings, nixa=strict), base_url="http://testserver") as c:
        r = token_with_assertion(c, client, assertion)
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client", r.text
    assert requests_to(path) == 0
    with TestClient(create_app(nixa.settings, nixa=nixa), base_url="http://testserver") as c:
        r = token_with_assertion(c, client, sign(KEY, claims_for(client.client_id)))
    assert r.json()["error"] == "invalid_grant" and requests_to(path) == 1  # allowed: the keys are fetched, the client known
    with nixa.db.session() as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.type == "fetch.refused", AuditEvent.client_id == client.client_id)).all()
    assert refused and refused[0].data["field"] == "jwks_uri"
