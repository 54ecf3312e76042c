"""The same life for a key on both backends, sealed in the database or made in the HSM (a
throwaway SoftHSM2 token): pending → active → retired → removed, one winner when two workers
rotate at once, retire and revoke through the audited service layer (keys/service.py)."""

from __future__ import annotations

import threading
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.events import Events
from idp.store.db import Database
from keys.pkcs11 import Hsm
from keys.ring import KeyRing
from keys.sealing import MasterKey, Sealer
from keys.service import KeyAdministration, UnknownKey
from tests.keys.conftest import at_once, new_master_key

BACKENDS = ["database", "pkcs11"]
ACTOR = {"via": "test", "name": "key custodian"}


class World:
    """Workers of one deployment on a fresh database, all making their keys on one backend."""

    def __init__(self, url: str, backend: str, softhsm) -> None:  # noqa: ANN001
        self.url, self.backend, self.softhsm = url, backend, softhsm
        self.master = MasterKey.from_b64(new_master_key())
        self.clock = [time.time()]
        self.hsm = Hsm(softhsm.module, softhsm.label, softhsm.pin) if backend == "pkcs11" else None
        self.in_token_before = self.hsm.kids() if self.hsm else set()

    def worker(self, backend: str | None = None) -> KeyRing:
        sealer = Sealer(Database(self.url), self.master)
        sealer.start()
        backend = backend or self.backend
        return KeyRing(Database(self.url), sealer, algs=("ES256",), refresh_every=0, clock=lambda: self.clock[0], retire_after=3600,
                       backend=backend, hsm=self.hsm if backend == "pkcs11" else None)

    def made_in_token(self) -> set[str]:
        return (self.hsm.kids() - self.in_token_before) if self.hsm else set()


@pytest.fixture(params=BACKENDS)
def world(request, fresh_database_url, softhsm) -> World:  # noqa: ANN001
    return World(fresh_database_url, request.param, softhsm)


def states(ring: KeyRing) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"pending": [], "active": [], "retired": []}
    for k in ring.describe():
        if k["alg"] == "ES256":
            out[k["state"]].append(k["kid"])
    return out


def published(ring: KeyRing) -> set[str]:
    return {k["kid"] for k in ring.jwks()["keys"]}


def verifies(ring: KeyRing, token: str) -> bool:
    try:
        ring.verify(token)
    except Exception:  # noqa: BLE001
        return False
    return True


def recorded(events: Events) -> list:
    seen: list = []
    events.subscribe(seen.append)
    return seen


def test_rotation_pending_active_retired_removed(world):
    ring = world.worker()
    ring.ensure()
    first = states(ring)
    assert len(first["active"]) == 1 and len(first["pending"]) == 1
    old, nxt = first["active"][0], first["pending"][0]
    assert {k["backend"] for k in ring.describe()} == {world.backend}
    assert {old, nxt} <= published(ring)  # the next key is published before it signs
    before = ring.sign({"iss": "x", "n": 1})
    assert jwt.decode(before, KeySet.import_key_set(ring.jwks())).header["kid"] == old

    assert ring.rotate("ES256") is True
    after = states(ring)
    assert after["active"] == [nxt] and after["retired"] == [old]
    assert len(after["pending"]) == 1 and after["pending"][0] not in (old, nxt)
    times = {k["kid"]: k for k in ring.describe()}
    assert times[old]["retired_at"] is not None and times[nxt]["activated_at"] is not None and times[after["pending"][0]]["activated_at"] is None
    assert published(ring) == {old, nxt, after["pending"][0]}
    now = ring.sign({"iss": "x", "n": 2})
    assert ring.verify(now).header["kid"] == nxt
    assert ring.verify(before).claims["n"] == 1  # retired: verify-only, tokens it signed still valid

    world.clock[0] += 3601
    assert ring.prune() == [old]
    assert old not in published(ring) and not verifies(ring, before)
    assert verifies(ring, now)
    if world.hsm:  # removed from the token too; the two in use are there
        assert world.made_in_token() == {nxt, after["pending"][0]}


def _meets_once(barrier: threading.Barrier, clock):  # noqa: ANN001, ANN202
    """`clock`, whose first reading waits for the other worker's."""
    met: list[bool] = []

    def reading() -> float:
        if not met:
            met.append(True)
            barrier.wait(timeout=10)
        return clock()

    return reading


def test_two_workers_starting_and_rotating_at_once_one_wins_and_nothing_is_left_behind(world):
    a, b = world.worker(), world.worker()
    made = at_once(a.ensure, b.ensure)
    assert not [m for m in made if isinstance(m, Exception)], made
    assert sorted(len(m) for m in made) == [0, 2]  # one worker made the pair, the other found it
    before = states(a)
    # "At once" for certain: each worker's first clock reading in rotate() comes after it read
    # the key ring's generation and before its conditional update, so both have read the same
    # generation before either writes (released threads alone may run one after the other).
    meeting = threading.Barrier(2)
    for ring in (a, b):
        ring.clock = _meets_once(meeting, ring.clock)
    results = at_once(lambda: a.rotate("ES256"), lambda: b.rotate("ES256"))
    assert sorted(results, key=str) == [False, True], results
    after = states(b)
    assert after["active"] == before["pending"] and after["retired"] == before["active"] and len(after["pending"]) == 1
    in_use = set(after["active"] + after["pending"] + after["retired"])
    if world.hsm:  # no key the losing worker made is left in the token
        assert world.made_in_token() == in_use
    assert published(a) == published(b) == in_use


def test_retire_stops_a_key_signing_and_it_still_verifies(world):
    ring = world.worker()
    ring.ensure()
    admin = KeyAdministration(ring, Events())
    seen = recorded(admin.events)
    old, nxt = states(ring)["active"][0], states(ring)["pending"][0]
    token = ring.sign({"iss": "x", "n": 3})

    done = admin.retire(old, actor=ACTOR)
    assert done["changed"] and done["state"] == "active"
    assert states(ring)["active"] == [nxt] and old in states(ring)["retired"]
    assert ring.verify(token).claims["n"] == 3 and old in published(ring)
    assert ring.verify(ring.sign({"iss": "x"})).header["kid"] == nxt

    again = at_once(lambda: admin.retire(old, actor=ACTOR), lambda: admin.retire(old, actor=ACTOR))
    assert [r["changed"] for r in again] == [False, False]  # already retired: nothing changes, nothing is audited twice

    pending = states(ring)["pending"][0]  # a pending key retired never signs; a new one is published behind it
    assert admin.retire(pending, actor=ACTOR)["changed"]
    assert pending in states(ring)["retired"] and len(states(ring)["pending"]) == 1 and states(ring)["active"] == [nxt]
    with pytest.raises(UnknownKey):
        admin.retire("es256-nothing", actor=ACTOR)

    retired = [e for e in seen if e.type == "key.retired"]
    assert [e.data["kid"] for e in retired] == [old, pending]
    assert retired[0].data["actor"] == ACTOR and retired[0].data["now_active"] == nxt and retired[0].data["backend"] == world.backend
    assert retired[1].data["was"] == "pending" and retired[1].data["published"] == states(ring)["pending"][0]


def test_revoke_takes_a_key_out_of_the_jwks_at_once(world):
    ring = world.worker()
    ring.ensure()
    admin = KeyAdministration(ring, Events())
    seen = recorded(admin.events)
    other_worker = world.worker()
    old, nxt = states(ring)["active"][0], states(ring)["pending"][0]
    token = ring.sign({"iss": "x", "n": 4})
    assert other_worker.verify(token).claims["n"] == 4

    done = admin.revoke(old, actor=ACTOR, reason="compromised")
    assert done["state"] == "active" and done["backend"] == world.backend
    for r in (ring, other_worker):
        assert old not in published(r) and not verifies(r, token)
        assert r.active_kid("ES256") == nxt and len(states(r)["pending"]) == 1
        assert r.verify(r.sign({"iss": "x"})).header["kid"] == nxt
    if world.hsm:
        assert old not in world.hsm.kids()
    with pytest.raises(UnknownKey):
        admin.revoke(old, actor=ACTOR)
    event = next(e for e in seen if e.type == "key.revoked")
    assert event.data == {"kid": old, "alg": "ES256", "was": "active", "backend": world.backend, "now_active": nxt,
                          "published": states(ring)["pending"][0], "reason": "compromised", "actor": ACTOR}


def test_rotate_and_prune_through_the_service_are_audited(world):
    ring = world.worker()
    ring.ensure()
    admin = KeyAdministration(ring, Events())
    seen = recorded(admin.events)
    old, nxt = states(ring)["active"][0], states(ring)["pending"][0]
    assert admin.rotate("ES256", actor=ACTOR)
    world.clock[0] += 3601
    assert admin.prune(actor=ACTOR) == [old]
    with pytest.raises(ValueError):
        admin.rotate("HS256", actor=ACTOR)
    rotated, pruned = (next(e for e in seen if e.type == t) for t in ("key.rotated", "key.pruned"))
    assert rotated.data == {"alg": "ES256", "active": nxt, "retired": old, "published": states(ring)["pending"][0],
                            "backend": world.backend, "actor": ACTOR}
    assert pruned.data == {"kids": [old], "actor": ACTOR}
    assert [k.kid for k in admin.list() if k.state == "active"] == [nxt]


def test_a_deployment_moves_to_the_hsm_by_rotating_and_its_older_tokens_still_verify(fresh_database_url, softhsm):
    world = World(fresh_database_url, "pkcs11", softhsm)
    sealed = world.worker("database")
    sealed.ensure()
    token = sealed.sign({"iss": "x", "n": 5})
    moved = world.worker("pkcs11")  # the same deployment restarted with NIXA_KEY_BACKEND=pkcs11
    assert moved.rotate("ES256") and moved.rotate("ES256")
    by_kid = {k["kid"]: k for k in moved.describe()}
    active = states(moved)["active"][0]
    assert by_kid[active]["backend"] == "pkcs11" and active in world.hsm.kids()
    assert {k["backend"] for k in by_kid.values() if k["state"] == "retired"} == {"database"}
    assert moved.verify(token).claims["n"] == 5  # signed by the sealed key before the move
    assert moved.verify(moved.sign({"iss": "x"})).header["kid"] == active
    with Database(fresh_database_url).session() as s:  # a master-key rotation re-seals only what is sealed
        assert moved.reseal(s, moved.sealer) == 2
