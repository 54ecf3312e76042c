"""The upstream's discovery document and JWKS, fetched through ResilientHttp under the fetch
policy (safe_fetch.py: the discovery document names URLs the operator did not write) and cached
in the ephemeral store (shared by every worker, keyed by connector and issuer so a config edit
that changes the issuer never reads the old provider's metadata).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from connectors.base import UpstreamUnavailable
from connectors.resilience import ResilientHttp
from connectors.safe_fetch import fetch_json

REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
# A forced JWKS refetch (unknown kid) happens at most once per this many seconds, so tokens with
# made-up kids cannot turn NIXA into a request amplifier against the upstream.
JWKS_REFETCH_INTERVAL = 30.0


def _secure_url(url: Any, issuer: str) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.netloc)
    # Plain http only where the issuer itself is a loopback sandbox.
    return parts.scheme == "http" and urlsplit(issuer).scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class UpstreamMetadata:
    def __init__(self, http: ResilientHttp, store: Any, connector_id: str, issuer: str, ttl: float) -> None:
        self._http = http
        self._store = store
        self._issuer = issuer
        self._ttl = ttl
        digest = hashlib.sha256(issuer.encode()).hexdigest()[:16]
        self._prefix = f"connector:{connector_id}:oidc:{digest}:"

    @property
    def discovery_url(self) -> str:
        # OIDC Discovery §4: issuer + /.well-known/openid-configuration (path appended).
        return self._issuer.rstrip("/") + "/.well-known/openid-configuration"

    def discovery(self, *, fresh: bool = False) -> dict[str, Any]:
        key = self._prefix + "discovery"
        if not fresh:
            cached = self._store.get(key)
            if cached is not None:
                return cached
        document = self._fetch_json(self.discovery_url, "discovery")
        self.check_discovery(document)
        self._store.put(key, document, self._ttl)
        return document

    def check_discovery(self, document: dict[str, Any]) -> None:
        missing = [name for name in REQUIRED_METADATA if not document.get(name)]
        if missing:
            raise UpstreamUnavailable(f"discovery document lacks {', '.join(missing)}")
        # OIDC Discovery §4.3: the issuer in the document must be exactly the configured one.
        if document["issuer"] != self._issuer:
            raise UpstreamUnavailable(f"discovery issuer {document['issuer']!r} is not {self._issuer!r}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            if name in document and not _secure_url(document[name], self._issuer):
                raise UpstreamUnavailable(f"discovery {name} is not an https URL")

    def keys(self, *, refetch: bool = False) -> KeySet:
        key = self._prefix + "jwks"
        document = None if refetch else self._store.get(key)
        if document is None:
            if refetch and not self._store.add(self._prefix + "jwks-refetch", 1, JWKS_REFETCH_INTERVAL):
                document = self._store.get(key)
            if document is None:
                document = self._fetch_json(self.discovery()["jwks_uri"], "jwks")
                self._store.put(key, document, self._ttl)
        try:
            # Only public signing keys: a private or symmetric key in a JWKS is a broken upstream.
            keys = [k for k in document.get("keys", []) if k.get("kty") in ("RSA", "EC", "OKP") and "d" not in k]
            return KeySet.import_key_set({"keys": keys})
        except (JoseError, ValueError, TypeError, AttributeError) as exc:
            raise UpstreamUnavailable(f"upstream JWKS unusable: {exc}") from exc

    def _fetch_json(self, url: str, what: str) -> dict[str, Any]:
        document = fetch_json(self._http, url, what)
        if not isinstance(document, dict):
            raise UpstreamUnavailable(f"{what}: not a JSON object")
        return document


def json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
