"""The master key can be rotated: every `sub`, client secret and token survives; the old key opens
nothing afterwards. An upgraded deployment keeps the values its master key used to derive.
Each test runs its own NIXA on a database of its own (tests/keys/conftest.py)."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from admin.cli import app as cli
from idp.events import Events
from idp.identity.people import People
from idp.oidc.clients import SecretHasher
from idp.store.db import Database
from idp.store.models import Client, ConnectorConfig, KeyRingState, SigningKey, StableSecret
from keys.sealing import MasterKey, MasterKeyMissing, MasterKeyProblem, SealedValueRefused, Sealer
from keys.stable import STABLE_SECRETS
from tests.conftest import REDIS_URL, code_flow, make_citizen, make_settings, register_client
from tests.keys.conftest import at_once, new_master_key

SECTOR = "rp.example.vn"


def nixa_on(url: str, var_dir, key: str, store=None, **kw):  # noqa: ANN001, ANN201
    from idp.app import Nixa

    return Nixa(make_settings(var_dir, url, key, **kw), store=store)


AUDIT_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")  # pinned, as the README asks before a rotation


def rotate_master(url: str, var_dir, old: str, new: str, audit_key: str = AUDIT_KEY):  # noqa: ANN001, ANN201
    env = {"NIXA_DATABASE_URL": url, "NIXA_VAR_DIR": str(var_dir), "NIXA_MASTER_KEY": old, "NIXA_NEW_MASTER_KEY": new,
           "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": "http://testserver", "NIXA_AUDIT_KEY": audit_key}
    return CliRunner().invoke(cli, ["keys", "rotate-master"], env=env)


def test_rotation_is_refused_while_the_audit_key_is_derived_from_the_master_key(tmp_path) -> None:  # noqa: ANN001
    """Rotating with an unpinned audit key would orphan every earlier audit row's key."""
    r = rotate_master(f"sqlite:///{tmp_path / 'nixa.db'}", tmp_path, new_master_key(), new_master_key(), audit_key="")
    assert r.exit_code == 2 and "nixa audit pin-key" in r.output


def seed_legacy_deployment(url: str, key: str) -> dict:
    """What NIXA left in its database before sealed secrets: a signing key sealed under the master
    key itself, a client secret hashed with the pepper derived from it, a plaintext connector secret."""
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    legacy = MasterKey(raw)
    db = Database(url)
    kid = "es256-legacy"
    signing = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"}, private=True)
    nonce, secret = secrets.token_bytes(12), secrets.token_urlsafe(32)
    with db.session() as s:
        s.add(KeyRingState(alg="ES256", generation=0, rotated_at=0.0))
        s.add(SigningKey(kid=kid, alg="ES256", state="active", created_at=0.0, activated_at=0.0,
                         private_enc=nonce + AESGCM(raw).encrypt(nonce, signing.as_pem(private=True), kid.encode()),
                         public_jwk=signing.as_dict(private=False)))
        s.add(ConnectorConfig(id="sms", type="telecom_sms", config={"base_url": "http://127.0.0.1:9", "api_key": "legacy-plain-key"}))
        s.add(Client(client_id="legacy-rp", secret_hash=SecretHasher(legacy.derive("client-secret")).hash(secret),
                     metadata_={"client_id": "legacy-rp", "redirect_uris": ["https://rp.example.vn/callback"],
                                "token_endpoint_auth_method": "client_secret_basic"}))
    sub = People(db, Events(), legacy.derive("pairwise-subject")).pairwise_sub("person-1", SECTOR)
    return {"legacy": legacy, "kid": kid, "client": ("legacy-rp", secret), "sub": sub}


def test_upgrade_keeps_derived_values_and_rotation_keeps_everything(fresh_database_url, tmp_path):
    url, old, new = fresh_database_url, new_master_key(), new_master_key()
    seeded = seed_legacy_deployment(url, old)

    upgraded = nixa_on(url, tmp_path, old)
    for name in STABLE_SECRETS:  # no `sub`, no client secret changes on upgrade
        assert upgraded.stable[name] == seeded["legacy"].derive(name)
    assert upgraded.people.pairwise_sub("person-1", SECTOR) == seeded["sub"]
    assert upgraded.clients.get(seeded["client"][0]).check_client_secret(seeded["client"][1])
    assert upgraded.keys.active_kid("ES256") == seeded["kid"]  # the legacy-sealed key still opens
    before = upgraded.keys.sign({"iss": "x", "n": 1}, "ES256")
    assert upgraded.connectors.get("sms").config.api_key == "legacy-plain-key"  # plaintext from before still reads

    out = rotate_master(url, tmp_path, old, new)
    assert out.exit_code == 0, out.output
    assert "version 2" in out.output and "NIXA_MASTER_KEY" in out.output

    db = Database(url)
    with db.session() as s:
        row = s.get(ConnectorConfig, "sms")
        assert "legacy-plain-key" not in str(row.config) and set(row.config["api_key"]) == {"$sealed"}
        blobs = [k.private_enc for k in s.scalars(select(SigningKey))] + [r.sealed for r in s.scalars(select(StableSecret))]
    probe = Sealer(db, MasterKey.from_b64(new))
    assert {probe.version_of(b) for b in blobs} == {2}

    rotated = nixa_on(url, tmp_path, new)
    for name in STABLE_SECRETS:
        assert rotated.stable[name] == seeded["legacy"].derive(name)
    assert rotated.people.pairwise_sub("person-1", SECTOR) == seeded["sub"]
    assert rotated.clients.get(seeded["client"][0]).check_client_secret(seeded["client"][1])
    assert rotated.keys.verify(before).claims["n"] == 1
    assert rotated.connectors.get("sms").config.api_key == "legacy-plain-key"


def test_after_rotation_the_old_master_key_opens_nothing(fresh_database_url, tmp_path):
    url, old, new = fresh_database_url, new_master_key(), new_master_key()
    nixa_on(url, tmp_path, old).connectors.upsert("sms", "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": "k-123"})
    assert rotate_master(url, tmp_path, old, new).exit_code == 0

    with pytest.raises(MasterKeyProblem, match="replaced by version 2"):
        nixa_on(url, tmp_path, old)
    db = Database(url)
    stale = Sealer(db, MasterKey.from_b64(old))
    with db.session() as s:
        sealed = [(k.private_enc, f"signing_keys/{k.kid}/private_enc", k.kid) for k in s.scalars(select(SigningKey))]
        sealed += [(r.sealed, f"stable_secrets/{r.name}/sealed", None) for r in s.scalars(select(StableSecret))]
        api_key = s.get(ConnectorConfig, "sms").config["api_key"]["$sealed"]
    sealed.append((base64.b64decode(api_key), "connector_configs/sms/config.api_key", None))
    for blob, aad, legacy_aad in sealed:
        with pytest.raises(SealedValueRefused):
            stale.open(blob, aad, legacy_aad=legacy_aad)
    again = rotate_master(url, tmp_path, new, old)  # an old key never comes back
    assert again.exit_code == 2 and "used before" in again.output


def test_every_sub_client_secret_and_token_survives_rotation(fresh_database_url, tmp_path):
    url, old, new = fresh_database_url, new_master_key(), new_master_key()
    before = nixa_on(url, tmp_path, old)
    client = register_client(before)
    citizen = make_citizen(before)
    from idp.app import create_app

    with TestClient(create_app(before.settings, nixa=before), base_url="http://testserver", follow_redirects=False) as b:
        tokens = code_flow(b, b, client, citizen, scope="openid profile offline_access")
        old_sub = b.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()["sub"]

    assert rotate_master(url, tmp_path, old, new).exit_code == 0
    after = nixa_on(url, tmp_path, new, store=before.store)
    with TestClient(create_app(after.settings, nixa=after), base_url="http://testserver", follow_redirects=False) as http:
        info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})  # issued before
        assert info.status_code == 200 and info.json()["sub"] == old_sub
        r = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                      auth=(client.client_id, client.secret))  # the client secret still authenticates
        assert r.status_code == 200, r.text
        fresh = http.get("/userinfo", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert fresh.json()["sub"] == old_sub


def test_a_tampered_or_moved_sealed_value_is_refused(fresh_database_url, tmp_path):
    url, key = fresh_database_url, new_master_key()
    nixa = nixa_on(url, tmp_path, key)
    nixa.connectors.upsert("sms-a", "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": "key-a"})
    nixa.connectors.upsert("sms-b", "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": "key-b"})
    db = Database(url)
    with db.session() as s:
        a, b = s.get(ConnectorConfig, "sms-a"), s.get(ConnectorConfig, "sms-b")
        b.config = {**b.config, "api_key": a.config["api_key"]}  # a's sealed key copied into b's row
        b.version += 1
    nixa.connectors.reload()
    assert nixa.connectors.entry("sms-b") is None  # refused (logged), not opened as a's key
    assert nixa.connectors.get("sms-a").config.api_key == "key-a"

    with db.session() as s:
        row = s.get(StableSecret, "pairwise-subject")
        blob = bytearray(row.sealed)
        blob[-1] ^= 1
        row.sealed = bytes(blob)
    with pytest.raises(SealedValueRefused):
        nixa_on(url, tmp_path, key)


def test_two_workers_starting_on_a_new_database_agree(fresh_database_url, tmp_path):
    url, key = fresh_database_url, new_master_key()
    made = at_once(lambda: nixa_on(url, tmp_path, key), lambda: nixa_on(url, tmp_path, key))
    first, second = made
    assert not isinstance(first, Exception) and not isinstance(second, Exception), made
    for name in STABLE_SECRETS:
        assert first.stable[name] == second.stable[name]
    # a new deployment's stable secrets are random, not derived from the master key
    assert first.stable["pairwise-subject"] != MasterKey.from_b64(key).derive("pairwise-subject")


def test_during_a_switch_the_previous_key_opens_and_new_values_seal_under_the_new_version(fresh_database_url, tmp_path):
    url, old, new = fresh_database_url, new_master_key(), new_master_key()
    nixa_on(url, tmp_path, old)
    switching = nixa_on(url, tmp_path, new, previous_master_key=old)  # rolled out before rotate-master
    switching.sealer.check_every = 0
    assert rotate_master(url, tmp_path, old, new).exit_code == 0
    switching.connectors.upsert("sms", "telecom_sms", {"base_url": "http://127.0.0.1:9", "api_key": "k"})
    with Database(url).session() as s:
        blob = base64.b64decode(s.get(ConnectorConfig, "sms").config["api_key"]["$sealed"])
    assert switching.sealer.version_of(blob) == 2
    assert nixa_on(url, tmp_path, new).connectors.get("sms").config.api_key == "k"  # previous key no longer needed


def test_a_wrong_master_key_is_refused_at_start(fresh_database_url, tmp_path):
    url = fresh_database_url
    nixa_on(url, tmp_path, new_master_key())
    with pytest.raises(MasterKeyProblem):
        nixa_on(url, tmp_path, new_master_key())


def test_start_refused_without_master_key_outside_the_demo(fresh_database_url, tmp_path, monkeypatch):
    url = fresh_database_url
    monkeypatch.delenv("NIXA_MASTER_KEY", raising=False)
    with pytest.raises(MasterKeyMissing, match="NIXA_MASTER_KEY"):
        nixa_on(url, tmp_path, "")
    r = CliRunner().invoke(cli, ["serve", "--port", "1"], env={"NIXA_DATABASE_URL": url, "NIXA_VAR_DIR": str(tmp_path),
                                                               "NIXA_MASTER_KEY": None, "NIXA_MASTER_KEY_FILE": None})
    assert r.exit_code == 2 and "NIXA_MASTER_KEY" in r.output
    assert not (tmp_path / "master.key").exists()  # nothing generated next to the data
    demo = nixa_on(url, tmp_path, "", demo=True)  # the demo makes its throwaway key, once
    assert (tmp_path / "master.key").exists()
    assert demo.master.fingerprint == nixa_on(url, tmp_path, "", demo=True).master.fingerprint

