from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey

from connectors.oidc.sandbox import start_operator
from connectors.safe_fetch import FetchPolicy

CALLBACK = "http://127.0.0.1:8000/login/callback/operator"
# The sandboxes listen on loopback: allowed explicitly, as a deployment would allow its network.
LOOPBACK_ALLOWED = FetchPolicy.allowing([], loopback=True)
CLIENT_ID = "nixa"
CLIENT_SECRET = "nixa-test-secret:with%odd&chars"
PKJWT_CLIENT_ID = "nixa-pkjwt"


@pytest.fixture(scope="module")
def client_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "nixa-client-1", "use": "sig", "alg": "RS256"})


@pytest.fixture(scope="module")
def operator(client_key: RSAKey):
    """The stand-in operator (node oidc-provider) on a free loopback port, once per module."""
    handle = start_operator(
        0,
        CLIENT_ID,
        CLIENT_SECRET,
        [CALLBACK],
        extra_clients=[
            {
                "client_id": PKJWT_CLIENT_ID,
                "redirect_uris": [CALLBACK],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "RS256",
                "id_token_signed_response_alg": "ES256",
                "jwks": {"keys": [client_key.as_dict(private=False)]},
            }
        ],
    )
    yield handle
    handle.stop()


@pytest.fixture
def connector_for():
    """Build a connector for an issuer with the operator test configuration plus overrides."""
    from connectors.base import ConnectorContext
    from connectors.oidc.connector import UpstreamOidcConnector
    from idp.store.ephemeral import MemoryStore

    made: list[UpstreamOidcConnector] = []

    def make(issuer: str, connector_id: str = "operator", **overrides) -> UpstreamOidcConnector:
        config = {
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "phone"],
            "acr_values": ["2"],
            "login_hint_format": "MSISDN:{msisdn}",
            "verified_claims": ["phone_number"],
            "timeout": 3,
            **overrides,
        }
        connector = UpstreamOidcConnector(ConnectorContext(connector_id, config, MemoryStore(), issuer="http://127.0.0.1:8000",
                                                           fetch_policy=LOOPBACK_ALLOWED))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.http.close()
