"""The key ring: rotation pending → active → retired → pruned, race-safe across workers,
keys sealed at rest under the KEK, bound to their row."""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.store.db import Database
from idp.store.models import SigningKey
from keys.ring import KeyRing
from keys.sealing import MasterKey, SealedValueRefused, Sealer
from tests.keys.conftest import at_once


def sealer(database_url: str, master_key: str) -> Sealer:
    s = Sealer(Database(database_url), MasterKey.from_b64(master_key))
    s.start()
    return s


def ring(database_url: str, master_key: str, **kw) -> KeyRing:
    return KeyRing(Database(database_url), sealer(database_url, master_key), refresh_every=0, **kw)


def states(r: KeyRing, alg: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"pending": [], "active": [], "retired": []}
    for k in r.describe():
        if k["alg"] == alg:
            out[k["state"]].append(k["kid"])
    return out


def published(r: KeyRing) -> set[str]:
    return {k["kid"] for k in r.jwks()["keys"]}


def test_rotation_semantics(nixa, database_url, master_key):
    r = ring(database_url, master_key)
    r.ensure()
    before = states(r, "ES256")
    assert len(before["active"]) == 1 and len(before["pending"]) == 1
    old_active, next_key = before["active"][0], before["pending"][0]
    assert {old_active, next_key} <= published(r)  # the next key is published before it signs
    old_token = r.sign({"iss": "x", "n": 1}, "ES256")
    assert jwt.decode(old_token, KeySet.import_key_set(r.jwks())).header["kid"] == old_active

    assert r.rotate("ES256") is True
    after = states(r, "ES256")
    assert after["active"] == [next_key]
    assert old_active in after["retired"]
    assert len(after["pending"]) == 1 and after["pending"][0] not in (old_active, next_key)
    assert {old_active, next_key, after["pending"][0]} <= published(r)
    # new tokens carry the new kid; tokens signed before still validate (retired = verify-only)
    new_token = r.sign({"iss": "x", "n": 2}, "ES256")
    assert new_token.split(".")[0] != old_token.split(".")[0]
    assert r.verify(new_token).header["kid"] == next_key
    assert r.verify(old_token).claims["n"] == 1
    # the app's own ring sees it too (another worker)
    nixa.keys.invalidate()
    assert nixa.keys.active_kid("ES256") == next_key
    assert nixa.keys.verify(old_token).claims["n"] == 1


def test_pending_key_does_not_verify(database_url, master_key):
    """A pending key is published but never signs, so nothing it 'signed' is accepted."""
    from joserfc.jwk import ECKey

    r = ring(database_url, master_key)
    pending = states(r, "ES256")["pending"][0]
    with Database(database_url).session() as s:
        row = s.get(SigningKey, pending)
        pem = sealer(database_url, master_key).open(row.private_enc, f"signing_keys/{pending}/private_enc")
    key = ECKey.import_key(pem, parameters={"kid": pending})
    token = jwt.encode({"alg": "ES256", "kid": pending}, {"iss": "x"}, key, algorithms=["ES256"])
    with pytest.raises(Exception):
        r.verify(token)


def test_tokens_issued_before_rotation_keep_working(nixa, http, browser):
    from tests.conftest import code_flow, make_citizen, register_client

    client = register_client(nixa)
    tokens = code_flow(browser, http, client, make_citizen(nixa), scope="openid profile offline_access")
    assert nixa.keys.rotate("ES256")
    nixa.keys.invalidate()
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    r = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                  auth=(client.client_id, client.secret))
    assert r.status_code == 200
    new_kid = jwt.decode(r.json()["id_token"], KeySet.import_key_set(http.get("/jwks").json())).header["kid"]
    assert new_kid == nixa.keys.active_kid("ES256")
    assert new_kid != jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).header["kid"]


def test_prune_removes_only_retired_keys_past_retire_after(database_url, master_key):
    clock = [time.time()]
    r = ring(database_url, master_key, retire_after=3600, clock=lambda: clock[0])
    r.rotate("EdDSA")
    retired = states(r, "EdDSA")["retired"]
    assert retired
    assert retired[-1] not in r.prune()  # just retired: kept
    assert retired[-1] in published(r)
    clock[0] += 3601
    removed = r.prune()
    assert set(retired) <= set(removed)
    after = states(r, "EdDSA")
    assert after["retired"] == [] and len(after["active"]) == 1 and len(after["pending"]) == 1
    assert not set(retired) & published(r)


def test_two_concurrent_rotations_exactly_one_wins(database_url, master_key):
    rings = [ring(database_url, master_key) for _ in range(2)]
    before = states(rings[0], "RS256")
    results = at_once(*(lambda r=r: r.rotate("RS256") for r in rings))
    assert sorted(results, key=str) == [False, True], results
    after = states(rings[0], "RS256")
    assert len(after["active"]) == 1 and len(after["pending"]) == 1
    assert after["active"] == before["pending"]
    assert before["active"][0] in after["retired"]


def test_keys_encrypted_at_rest(nixa, database_url, master_key):
    right = sealer(database_url, master_key)
    wrong = Sealer(Database(database_url), MasterKey(secrets.token_bytes(32)))
    with Database(database_url).session() as s:
        rows = s.scalars(select(SigningKey)).all()
        assert rows
        for row in rows:
            blob = bytes(row.private_enc)
            assert b"PRIVATE KEY" not in blob and b"-----BEGIN" not in blob
            assert right.version_of(blob) is not None  # sealed under a KEK version, not the master key itself
            pem = right.open(blob, f"signing_keys/{row.kid}/private_enc")
            assert b"PRIVATE KEY" in pem
            with pytest.raises(SealedValueRefused):
                wrong.open(blob, f"signing_keys/{row.kid}/private_enc")
            with pytest.raises(SealedValueRefused):  # bound to its kid: a swapped row does not open
                right.open(blob, f"signing_keys/{row.kid}x/private_enc")
            assert "d" not in row.public_jwk


def test_wrong_master_key_cannot_load_the_ring(nixa, database_url):
    r = KeyRing(Database(database_url), Sealer(Database(database_url), MasterKey(secrets.token_bytes(32))), refresh_every=0)
    with pytest.raises(SealedValueRefused):
        r.sign({"x": 1}, "ES256")


def test_master_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        MasterKey.from_b64(base64.urlsafe_b64encode(b"short").decode())


def test_prune_bumps_the_generation_so_other_workers_stop_publishing_and_trusting(nixa, http, database_url, master_key, monkeypatch):
    monkeypatch.setattr(nixa.keys, "refresh_every", 0)  # the app is "another worker": it only re-reads on a new generation
    clock = [time.time()]
    r = ring(database_url, master_key, retire_after=3600, clock=lambda: clock[0])
    token, old = r.sign({"iss": "x", "n": 3}, "EdDSA"), r.active_kid("EdDSA")
    assert r.rotate("EdDSA")
    assert old in {k["kid"] for k in http.get("/jwks").json()["keys"]}
    assert nixa.keys.verify(token).claims["n"] == 3  # retired: still trusted
    clock[0] += 3601
    assert old in r.prune()
    assert old not in {k["kid"] for k in http.get("/jwks").json()["keys"]}
    with pytest.raises(Exception):
        nixa.keys.verify(token)


def test_revoke_removes_a_key_at_once_and_the_next_one_signs(nixa, http, browser, database_url, var_dir, master_key, monkeypatch):
    from typer.testing import CliRunner

    from admin.cli import app as cli
    from idp.store.models import AuditEvent
    from tests.conftest import REDIS_URL, code_flow, make_citizen, register_client

    monkeypatch.setattr(nixa.keys, "refresh_every", 0)
    client = register_client(nixa)
    tokens = code_flow(browser, http, client, make_citizen(nixa))
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 200
    compromised = jwt.decode(tokens["access_token"], KeySet.import_key_set(http.get("/jwks").json())).header["kid"]
    alg = jwt.decode(tokens["access_token"], KeySet.import_key_set(http.get("/jwks").json())).header["alg"]
    next_key = states(ring(database_url, master_key), alg)["pending"][0]

    env = {"NIXA_DATABASE_URL": database_url, "NIXA_VAR_DIR": str(var_dir), "NIXA_MASTER_KEY": master_key,
           "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": "http://testserver"}
    out = CliRunner().invoke(cli, ["keys", "revoke", compromised], env=env)  # another process, like an operator's
    assert out.exit_code == 0, out.output

    assert compromised not in {k["kid"] for k in http.get("/jwks").json()["keys"]}
    assert http.get("/userinfo", headers=bearer).status_code == 401
    intro = http.post("/introspect", data={"token": tokens["access_token"]}, auth=(client.client_id, client.secret))
    assert intro.json() == {"active": False}
    assert nixa.keys.active_kid(alg) == next_key  # the published next key took over
    assert len(states(ring(database_url, master_key), alg)["pending"]) == 1
    with Database(database_url).session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.type == "key.revoked").order_by(AuditEvent.id.desc())).first()
    assert event.data["kid"] == compromised and event.data["now_active"] == next_key
    assert CliRunner().invoke(cli, ["keys", "revoke", compromised], env=env).exit_code == 2


def test_a_remembered_signature_covers_only_those_exact_bytes_and_its_algorithm(database_url, master_key):
    """The ring remembers tokens it verified (UserInfo and introspection see the same bearer
    token again and again); an attacker gains nothing from a verified token: another payload or
    signature under the same header is checked afresh, and a caller limiting the algorithms is
    not answered from what another caller allowed."""
    r = ring(database_url, master_key)
    token = r.sign({"iss": "x", "n": 1}, "ES256")
    assert r.verify(token).claims["n"] == 1 and r.verify(token).claims["n"] == 1
    header, payload, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"iss":"x","n":2}').decode().rstrip("=")
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA"):
        with pytest.raises(Exception):
            r.verify(forged)
    with pytest.raises(Exception):
        r.verify(token, algs=("EdDSA",))
    r.verify(token).claims["n"] = 99  # a caller changing its copy changes nobody else's
    assert r.verify(token).claims["n"] == 1


def test_the_view_is_checked_in_the_background_before_it_falls_due_and_never_used_past_it(nixa, database_url, master_key):
    # Two workers: `other` rotates; `worker` signs on its hot path, asking fresh() first.
    worker, other = ring(database_url, master_key), ring(database_url, master_key)
    worker.refresh_every = 2.0
    other.ensure()
    worker.sign({"n": 1}, "ES256")
    before = worker.active_kid("ES256")
    assert other.rotate("ES256")
    assert worker.fresh() and worker.active_kid("ES256") == before  # within its age: the old view
    worker._cache.checked_at -= 2.0 * 0.85  # the view is in its last fifth
    assert worker.fresh()  # still usable now, and a background check has started
    deadline = time.monotonic() + 10
    while worker._checking or worker._cache.checked_at < time.monotonic() - 1.0:
        assert time.monotonic() < deadline, "the background check never ran"
        time.sleep(0.01)
    assert worker.fresh()  # checked again: young
    assert worker.active_kid("ES256") != before  # and it saw the other worker's rotation
    worker._cache.checked_at -= 2.0  # a view past its age is never fresh, whatever runs in the background
    assert not worker.fresh()
