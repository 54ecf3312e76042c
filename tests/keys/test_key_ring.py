"""The key ring: rotation pending → active → retired → pruned, race-safe across workers,
keys encrypted at rest under the master key."""

from __future__ import annotations

import base64
import secrets
import threading
import time

import pytest
from cryptography.exceptions import InvalidTag
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.store.db import Database
from idp.store.models import SigningKey
from keys.ring import KeyRing, MasterKey


def ring(database_url: str, master_key: str, **kw) -> KeyRing:
    return KeyRing(Database(database_url), MasterKey.from_b64(master_key), refresh_every=0, **kw)


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
        pem = MasterKey.from_b64(master_key).open(row.private_enc, aad=pending)
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
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def go(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = rings[i].rotate("RS256")
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results, key=str) == [False, True], results
    after = states(rings[0], "RS256")
    assert len(after["active"]) == 1 and len(after["pending"]) == 1
    assert after["active"] == before["pending"]
    assert before["active"][0] in after["retired"]


def test_keys_encrypted_at_rest(database_url, master_key):
    with Database(database_url).session() as s:
        rows = s.scalars(select(SigningKey)).all()
        assert rows
        for row in rows:
            blob = bytes(row.private_enc)
            assert b"PRIVATE KEY" not in blob and b"-----BEGIN" not in blob
            pem = MasterKey.from_b64(master_key).open(blob, aad=row.kid)
            assert b"PRIVATE KEY" in pem
            wrong = MasterKey(secrets.token_bytes(32))
            with pytest.raises(InvalidTag):
                wrong.open(blob, aad=row.kid)
            with pytest.raises(InvalidTag):  # bound to its kid: a swapped row does not open
                MasterKey.from_b64(master_key).open(blob, aad=row.kid + "x")
            assert "d" not in row.public_jwk


def test_wrong_master_key_cannot_load_the_ring(database_url):
    r = KeyRing(Database(database_url), MasterKey(secrets.token_bytes(32)), refresh_every=0)
    with pytest.raises(InvalidTag):
        r.sign({"x": 1}, "ES256")


def test_master_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        MasterKey.from_b64(base64.urlsafe_b64encode(b"short").decode())
