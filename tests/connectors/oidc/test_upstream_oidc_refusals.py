"""What the connector refuses: forged or mixed-up callbacks, refusals, replays, dead or slow upstreams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.base import NotAllowed, UpstreamUnavailable
from connectors.oidc.errors import UpstreamResponseRejected
from connectors.oidc.sandbox import free_port, start_operator

from .conftest import CALLBACK, CLIENT_ID, CLIENT_SECRET, LOOPBACK_ALLOWED
from .upstream_browser import sign_in_at_upstream


def start(connector, hint="0912345678", **browser):
    url, saved = connector.login_url("state-abc", CALLBACK, login_hint=hint)
    return sign_in_at_upstream(url, CALLBACK, **browser), dict(saved)


def rejected(connector, params, saved, code: str, callback: str = CALLBACK) -> None:
    with pytest.raises(UpstreamResponseRejected) as caught:
        connector.handle_callback(params, callback, saved)
    assert caught.value.code == code, caught.value


def test_state_mismatch(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    rejected(connector, {**params, "state": "state-evil"}, saved, "state_mismatch")
    rejected(connector, {k: v for k, v in params.items() if k != "state"}, saved, "state_mismatch")


def test_nonce_mismatch(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    saved["nonce"] = "a-nonce-this-request-never-sent-xyz"
    rejected(connector, params, saved, "nonce_mismatch")


def test_wrong_or_missing_iss_parameter(operator, connector_for):
    # RFC 9207: a response from another provider (mix-up) or without iss is refused.
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    rejected(connector, {**params, "iss": "http://127.0.0.1:1"}, saved, "issuer_mismatch")
    rejected(connector, {k: v for k, v in params.items() if k != "iss"}, saved, "issuer_mismatch")
    # The genuine callback still works afterwards: the code was never sent anywhere.
    assert connector.handle_callback(params, CALLBACK, saved).subject


def test_callback_url_must_be_the_one_sent(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    rejected(connector, params, saved, "callback_mismatch", callback=CALLBACK + "-other")


def test_saved_data_for_another_issuer_or_missing(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    rejected(connector, params, {**saved, "issuer": "http://127.0.0.1:1"}, "saved_state_invalid")
    rejected(connector, params, {}, "saved_state_invalid")


def test_subscriber_declines(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector, action="deny")
    assert params["error"] == "access_denied"
    with pytest.raises(NotAllowed) as caught:
        connector.handle_callback(params, CALLBACK, saved)
    assert caught.value.code == "upstream_denied"


def test_error_callback_still_checks_state(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector, action="deny")
    rejected(connector, {**params, "state": "forged"}, saved, "state_mismatch")


def test_code_replay(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    assert connector.handle_callback(params, CALLBACK, saved).subject
    rejected(connector, params, saved, "upstream_code_rejected")


def test_pkce_verifier_must_match(operator, connector_for):
    connector = connector_for(operator.issuer)
    params, saved = start(connector)
    saved["code_verifier"] = "x" * 64
    rejected(connector, params, saved, "upstream_code_rejected")


def test_wrong_client_secret_is_an_outage_not_the_persons_fault(operator, connector_for):
    connector = connector_for(operator.issuer, client_secret="not-the-secret")
    params, saved = start(connector)
    with pytest.raises(UpstreamUnavailable):
        connector.handle_callback(params, CALLBACK, saved)


def test_upstream_down_at_login():
    from connectors.base import ConnectorContext
    from connectors.oidc.connector import UpstreamOidcConnector
    from idp.store.ephemeral import MemoryStore

    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "timeout": 1}
    connector = UpstreamOidcConnector(ConnectorContext("operator", config, MemoryStore(), fetch_policy=LOOPBACK_ALLOWED))
    with pytest.raises(UpstreamUnavailable) as caught:
        connector.login_url("s", CALLBACK)
    assert caught.value.code != "fetch_refused"  # down, not refused
    health = connector.health()
    assert not health.ok


def test_upstream_stops_between_redirect_and_callback(connector_for):
    handle = start_operator(0, CLIENT_ID, CLIENT_SECRET, [CALLBACK])
    try:
        connector = connector_for(handle.issuer)
        params, saved = start(connector)
    finally:
        handle.stop()
    with pytest.raises(UpstreamUnavailable):
        connector.handle_callback(params, CALLBACK, saved)
    assert not connector.health().ok


class _SlowHandler(BaseHTTPRequestHandler):
    release: threading.Event

    def do_GET(self) -> None:
        self.release.wait(3.0)  # far longer than the connector's timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_upstream() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_SlowHandler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_upstream_slow(slow_upstream, connector_for):
    connector = connector_for(slow_upstream, timeout=0.3)
    with pytest.raises(UpstreamUnavailable):
        connector.login_url("s", CALLBACK)
    health = connector.health()
    assert not health.ok and health.latency_ms is not None and health.latency_ms < 2500


def test_breaker_opens_after_repeated_failures(connector_for):
    connector = connector_for(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    for _ in range(connector.http.breaker.threshold):
        with pytest.raises(UpstreamUnavailable):
            connector.login_url("s", CALLBACK)
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        connector.login_url("s", CALLBACK)
