"""The hot paths are answered in front of FastAPI's router (idp/hot.py): the same answers as any
route for what they do not serve (a method), and the same middleware around what they do."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from idp.oidc.endpoints import hot


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/token", "POST"), ("PUT", "/introspect", "POST"), ("GET", "/revoke", "POST"),
    ("POST", "/jwks", "GET, HEAD"), ("DELETE", "/userinfo", "GET, HEAD, POST"),
    ("POST", "/.well-known/openid-configuration", "GET, HEAD"),
])
def test_a_method_a_hot_path_does_not_serve_is_a_405_naming_the_ones_it_does(app, method, path, allow):  # noqa: ANN001
    with TestClient(app) as c:
        r = c.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["error"] == "invalid_request" and r.json()["request_id"] == r.headers["x-request-id"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_head_of_a_hot_document_has_its_etag_and_no_body(app):  # noqa: ANN001
    with TestClient(app) as c:
        full = c.get("/jwks")
        head = c.head("/jwks")
        again = c.get("/jwks", headers={"If-None-Match": full.headers["etag"]})
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == full.headers["etag"]
    assert again.status_code == 304 and again.content == b""


def test_every_hot_path_is_one_the_router_no_longer_serves(app):  # noqa: ANN001
    routed = {getattr(r, "path", None) for r in app.routes}
    assert set(hot.routes) and not set(hot.routes) & routed  # one place answers each path
