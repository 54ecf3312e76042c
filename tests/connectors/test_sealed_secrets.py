"""Connector secrets are sealed at rest: a database dump holds no LDAP bind password, API key,
upstream client secret or private key; a plaintext value from before sealing still works and
is sealed at the next write; nothing lists them."""

from __future__ import annotations

import json
import secrets

from joserfc.jwk import ECKey
from typer.testing import CliRunner

from idp.store.db import Database
from idp.store.models import ConnectorConfig
from tests.conftest import REDIS_URL, uid

OIDC_ISSUER = "http://127.0.0.1:9"


def raw_row(database_url: str, connector_id: str) -> dict:
    with Database(database_url).session() as s:
        return dict(s.get(ConnectorConfig, connector_id).config)


def test_every_declared_secret_is_sealed_in_the_row(nixa, database_url):
    sms_key, bind_password, client_secret = (secrets.token_urlsafe(16) for _ in range(3))
    jwk = ECKey.generate_key("P-256", parameters={"kid": "nixa-at-upstream"}, private=True).as_dict(private=True)
    cases = {
        uid("sms"): ("telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": sms_key}, {"api_key": sms_key}),
        uid("ldap"): ("ldap", {"url": "ldap://127.0.0.1:9", "bind_dn": "cn=nixa,dc=example", "bind_password": bind_password,
                               "base_dn": "dc=example"}, {"bind_password": bind_password}),
        uid("up"): ("oidc", {"issuer": OIDC_ISSUER, "client_id": "nixa", "client_secret": client_secret},
                    {"client_secret": client_secret}),
        uid("pkj"): ("oidc", {"issuer": OIDC_ISSUER, "client_id": "nixa", "token_endpoint_auth_method": "private_key_jwt",
                              "private_key": jwk}, {"private_key": jwk["d"]}),
    }
    for cid, (type_name, config, hidden) in cases.items():
        nixa.connectors.upsert(cid, type_name, config, enabled=False)
        row = raw_row(database_url, cid)
        for key, plaintext in hidden.items():
            assert plaintext not in json.dumps(row), (cid, row)
            assert set(row[key]) == {"$sealed"}
        assert {k: v for k, v in row.items() if k not in hidden} == {k: v for k, v in config.items() if k not in hidden}
    # opened for the connector itself, identical to what was written (a JWK stays a JWK)
    cid = next(c for c, case in cases.items() if case[0] == "oidc" and "private_key" in case[1])
    nixa.connectors.upsert(cid, "oidc", cases[cid][1])
    entry = nixa.connectors.entry(cid)
    assert entry.config["private_key"] == jwk and entry.instance.config.private_key == jwk
    assert jwk["d"] not in repr(entry)
    nixa.connectors.upsert(cid, "oidc", cases[cid][1], enabled=False)


def test_a_plaintext_secret_from_before_sealing_still_reads_and_is_sealed_at_the_next_write(nixa, database_url):
    cid, api_key = uid("sms-old"), secrets.token_urlsafe(16)
    with Database(database_url).session() as s:
        s.add(ConnectorConfig(id=cid, type="telecom_sms", config={"base_url": "http://127.0.0.1:9", "api_key": api_key}))
    nixa.connectors.reload()
    assert nixa.connectors.get(cid).config.api_key == api_key
    version = nixa.connectors.entry(cid).version
    assert nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": api_key}) == version  # unchanged
    assert api_key not in json.dumps(raw_row(database_url, cid))
    assert nixa.connectors.get(cid).config.api_key == api_key
    nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": api_key}, enabled=False)


def test_the_cli_never_prints_a_connector_secret(nixa, database_url, var_dir, master_key, tmp_path):
    from admin.cli import app

    cid, api_key = uid("sms-cli"), secrets.token_urlsafe(16)
    path = tmp_path / "sms.json"
    path.write_text(json.dumps({"base_url": "http://127.0.0.1:9", "api_key": api_key}))
    env = {"NIXA_DATABASE_URL": database_url, "NIXA_VAR_DIR": str(var_dir), "NIXA_MASTER_KEY": master_key, "NIXA_REDIS_URL": REDIS_URL}
    runner = CliRunner()
    outputs = [runner.invoke(app, ["connectors", "set", cid, "telecom_sms", str(path)], env=env),
               runner.invoke(app, ["connectors", "list"], env=env), runner.invoke(app, ["connectors", "health"], env=env)]
    assert cid in outputs[1].output
    for out in outputs:
        assert api_key not in out.output
    assert api_key not in json.dumps(raw_row(database_url, cid))
    nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": api_key}, enabled=False)
