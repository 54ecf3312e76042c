"""The federation every sign-in test of this folder runs against: real sandboxes of the registry,
the operator's SMS API and OpenID provider (npm oidc-provider), the CA's OCSP/CRL responder
and an OpenLDAP directory, configured as connectors of the shared test NIXA."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from connectors.certificate.pki import TestPKI
from connectors.oidc.sandbox import start_operator
from tests.connectors.sandboxes import free_port, running_sandbox

CONNECTORS = ("population", "telecom", "operator", "certificate", "mof")


@pytest.fixture(scope="module")
def federation(nixa, tmp_path_factory) -> Iterator[dict]:  # noqa: ANN001
    keys = {"registry": secrets.token_urlsafe(16), "sms": secrets.token_urlsafe(16), "operator": secrets.token_urlsafe(24)}
    work = tmp_path_factory.mktemp("federation")
    ca_port = free_port()
    ca_url = f"http://127.0.0.1:{ca_port}"
    pki = TestPKI.init(work / "pki", ocsp_url=f"{ca_url}/ocsp", crl_url=f"{ca_url}/crl")
    callback = f"{nixa.settings.issuer}/login/callback/operator"
    with (
        running_sandbox("connectors.population.sandbox", f"--api-key={keys['registry']}", "--db", str(work / "registry.db"),
                        "--generate", "200") as registry,
        running_sandbox("connectors.telecom.sandbox", f"--api-key={keys['sms']}") as sms,
        running_sandbox("connectors.certificate.sandbox", "--pki", str(work / "pki"), port=ca_port) as ca,
    ):
        operator = start_operator(free_port(), "nixa", keys["operator"], [callback],
                                  post_logout_redirect_uris=[f"{nixa.settings.issuer}/logout/upstream"])
        from connectors.ldap.sandbox import start_directory

        directory = start_directory(work / "ldap", 0)
        reg = nixa.connectors
        reg.upsert("mof", "ldap", directory.connector_config(), loa="low", display_name_vi="Cán bộ", display_name_en="Staff")
        reg.upsert("population", "population", {"base_url": registry.base_url, "api_key": keys["registry"], "otp_connector": "telecom",
                                                "challenge_loa": "substantial"}, loa="low", display_name_vi="Dân cư", display_name_en="Registry")
        reg.upsert("telecom", "telecom_sms", {"base_url": sms.base_url, "api_key": keys["sms"], "resend_after": 0}, loa="low",
                   display_name_vi="SMS", display_name_en="SMS")
        reg.upsert("operator", "oidc", {"issuer": operator.issuer, "client_id": "nixa", "client_secret": keys["operator"],
                                        "scopes": ["openid", "phone"], "acr_values": ["2"], "login_hint_format": "MSISDN:{msisdn}",
                                        "verified_claims": ["phone_number"]}, loa="substantial", display_name_vi="Nhà mạng",
                   display_name_en="Operator")
        reg.upsert("certificate", "certificate", {"trust_anchors": [str(pki.trust_anchor_path)], "trusted_proxies": ["10.9.8.7/32"],
                                                  "intermediate_certs": [str(pki.dir / "ca.pem")]},
                   loa="high", display_name_vi="Chứng thư số", display_name_en="Certificate")
        try:
            yield {"registry": registry, "sms": sms, "ca": ca, "operator": operator, "pki": pki, "callback": callback,
                   "registry_db": work / "registry.db",
                   "directory": directory}
        finally:
            for cid in CONNECTORS:  # leave the shared app as other tests expect it
                entry = nixa.connectors.entry(cid)
                if entry:
                    reg.upsert(cid, entry.type, entry.config, loa=int(entry.loa), enabled=False)
            operator.stop()
            directory.stop()
