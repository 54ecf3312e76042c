"""OIDC Core §8.1: one pairwise sector for several redirect hosts, proven by the
sector_identifier_uri document that lists them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from idp.oidc.clients import InvalidClientMetadata
from tests.conftest import code_flow, make_citizen, register_client, uid

DOCS: dict[str, object] = {}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = DOCS.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if body is not None:
            self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def sector_host() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_sector_document_makes_one_sector_of_several_hosts(nixa, browser, http, sector_host) -> None:  # noqa: ANN001
    uris = ["https://a.thue.example.vn/cb", "https://b.thue.example.vn/cb"]
    DOCS["/sector-ok.json"] = uris
    citizen = make_citizen(nixa)
    one = register_client(nixa, redirect_uri=uris[0], redirect_uris=uris, sector_identifier_uri=f"{sector_host}/sector-ok.json",
                          nixa_first_party=True)
    two = register_client(nixa, redirect_uri=uris[1], redirect_uris=uris, sector_identifier_uri=f"{sector_host}/sector-ok.json",
                          nixa_first_party=True)
    other = register_client(nixa, redirect_uri="https://bhxh.example.vn/cb", nixa_first_party=True)
    from joserfc import jwt

    def sub(client):  # noqa: ANN001, ANN202
        return jwt.decode(code_flow(browser, http, client, citizen)["id_token"], nixa.keys._view().verify_set).claims["sub"]

    assert sub(one) == sub(two) != sub(other)


@pytest.mark.parametrize("doc", [["https://a.thue.example.vn/cb"], {"not": "a list"}, None])
def test_sector_document_must_list_every_redirect_uri(nixa, sector_host, doc) -> None:  # noqa: ANN001
    path = f"/{uid('sector')}.json"
    if doc is not None:
        DOCS[path] = doc
    with pytest.raises(InvalidClientMetadata):
        register_client(nixa, redirect_uris=["https://a.thue.example.vn/cb", "https://b.thue.example.vn/cb"],
                        redirect_uri="https://a.thue.example.vn/cb", sector_identifier_uri=f"{sector_host}{path}")
