"""The key ring: generate, store encrypted at rest, publish (JWKS), sign, verify, rotate.

Life of a key: pending (published, not signing) → active (signing) → retired (published,
verify-only until every token it signed has expired) → removed. Publishing the next key
before it signs lets relying parties cache the JWKS safely.

Rotation is race-safe across workers: it bumps `key_ring_state.generation` with a
compare-and-set; of two workers rotating at once exactly one wins, the other changes nothing.
Every change to the set of keys (rotate, prune, revoke) bumps the generation, which is how
other workers learn within seconds to stop publishing and trusting a removed key.
Private keys are sealed under the KEK (keys/sealing.py), bound to their row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from idp.store.db import Database
from idp.store.models import KeyRingState, SigningKey
from keys.sealing import MasterKey, Sealer, place  # noqa: F401  MasterKey: re-exported for older imports

SUPPORTED_ALGS = ("ES256", "RS256", "EdDSA")


def _generate(alg: str, kid: str) -> ECKey | RSAKey | OKPKey:
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters=params, private=True)
    raise ValueError(f"unsupported alg {alg}")


def _import(alg: str, pem: bytes, kid: str) -> ECKey | RSAKey | OKPKey:
    params = {"kid": kid, "alg": alg, "use": "sig"}
    cls = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}[alg]
    return cls.import_key(pem, parameters=params)


def _aad(kid: str) -> str:
    return place("signing_keys", kid, "private_enc")


@dataclass
class _Cache:
    generation: int
    checked_at: float
    signing: dict[str, Any]
    verify_set: KeySet
    jwks: dict
    jwks_body: bytes = b""  # the JWKS encoded once per generation, and its ETag
    jwks_etag: str = ""


class KeyRing:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        *,
        algs: tuple[str, ...] = SUPPORTED_ALGS,
        retire_after: float = 3600,
        clock: Callable[[], float] = time.time,
        refresh_every: float = 5.0,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.algs = algs
        self.retire_after = retire_after  # longest token lifetime + grace
        self.clock = clock
        self.refresh_every = refresh_every
        self._cache: _Cache | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------

    def ensure(self) -> None:
        """Make sure every alg has an active and a pending key (first start, new alg)."""
        for alg in self.algs:
            with self.db.session() as s:
                state = s.get(KeyRingState, alg)
                if state is None:
                    s.add(KeyRingState(alg=alg, generation=0, rotated_at=self.clock()))
                    try:
                        s.flush()
                    except Exception:
                        s.rollback()
                        continue  # another worker made it
                    s.add(self._new_row(alg, "active"))
                    s.add(self._new_row(alg, "pending"))
        self._cache = None

    def _new_row(self, alg: str, state: str) -> SigningKey:
        kid = f"{alg.lower()}-{secrets.token_urlsafe(9)}"
        key = _generate(alg, kid)
        now = self.clock()
        return SigningKey(
            kid=kid,
            alg=alg,
            state=state,
            private_enc=self.sealer.seal(key.as_pem(private=True), _aad(kid)),
            public_jwk=key.as_dict(private=False),
            created_at=now,
            activated_at=now if state == "active" else None,
        )

    def rotate(self, alg: str) -> bool:
        """pending → active, active → retired, a new pending. False if another worker won."""
        with self.db.session() as s:
            state = s.get(KeyRingState, alg)
            if state is None:
                raise ValueError(f"no key ring for {alg}; run ensure() first")
            seen = state.generation
            won = s.execute(
                update(KeyRingState)
                .where(KeyRingState.alg == alg, KeyRingState.generation == seen)
                .values(generation=seen + 1, rotated_at=self.clock())
            ).rowcount
            if won != 1:
                s.rollback()
                return False
            now = self.clock()
            s.execute(
                update(SigningKey).where(SigningKey.alg == alg, SigningKey.state == "active").values(state="retired", retired_at=now)
            )
            self._promote_pending(s, alg, now)
        self._cache = None
        return True

    def _promote_pending(self, s: Session, alg: str, now: float) -> None:
        """The published next key starts signing (relying parties have it already); a new one is
        published behind it."""
        pending = s.scalars(select(SigningKey).where(SigningKey.alg == alg, SigningKey.state == "pending")).all()
        if pending:
            s.execute(update(SigningKey).where(SigningKey.kid == pending[0].kid).values(state="active", activated_at=now))
            for extra in pending[1:]:
                s.delete(extra)
        else:
            s.add(self._new_row(alg, "active"))
        s.add(self._new_row(alg, "pending"))

    @staticmethod
    def _bump(s: Session, alg: str) -> None:
        """Tell every worker the set of keys changed (their cached view compares generations)."""
        s.execute(update(KeyRingState).where(KeyRingState.alg == alg).values(generation=KeyRingState.generation + 1))

    def prune(self) -> list[str]:
        """Remove retired keys whose every token has expired. Bumps the generation, so other
        workers stop publishing and trusting them too."""
        limit = self.clock() - self.retire_after
        with self.db.session() as s:
            old = s.scalars(select(SigningKey).where(SigningKey.state == "retired", SigningKey.retired_at < limit)).all()
            kids = [k.kid for k in old]
            for alg in sorted({k.alg for k in old}):
                self._bump(s, alg)
            for k in old:
                s.delete(k)
        self._cache = None
        return kids

    def revoke(self, kid: str) -> dict | None:
        """A compromised key: deleted now, whatever its state, so no worker publishes it or
        verifies a token signed by it once it re-reads the generation. If it was signing, the
        pending key takes over at once. None when there is no such key."""
        with self.db.session() as s:
            row = s.get(SigningKey, kid)
            if row is None:
                return None
            alg, state = row.alg, row.state
            self._bump(s, alg)  # first: holds the ring's row, so a rotation at the same time waits, then loses its compare-and-set
            if s.execute(delete(SigningKey).where(SigningKey.kid == kid)).rowcount != 1:
                s.rollback()
                return None  # revoked by someone else meanwhile
            if state == "active":
                self._promote_pending(s, alg, self.clock())
            elif state == "pending":
                s.add(self._new_row(alg, "pending"))
        self._cache = None
        return {"kid": kid, "alg": alg, "state": state}

    def reseal(self, s: Session, sealer: Sealer) -> int:
        """Re-seal every private key under the sealer's KEK version (master-key rotation)."""
        rows = s.scalars(select(SigningKey)).all()
        for r in rows:
            r.private_enc = sealer.reseal(r.private_enc, _aad(r.kid), legacy_aad=r.kid)
        return len(rows)

    def describe(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(select(SigningKey).order_by(SigningKey.alg, SigningKey.created_at)).all()
            return [
                {"kid": r.kid, "alg": r.alg, "state": r.state, "created_at": r.created_at, "retired_at": r.retired_at}
                for r in rows
            ]

    # ---- cached view for the hot path -----------------------------------------------

    def _generation(self) -> int:
        with self.db.session() as s:
            return sum(s.scalars(select(KeyRingState.generation)).all()) + len(s.scalars(select(KeyRingState.alg)).all())

    def _view(self) -> _Cache:
        cache = self._cache
        now = time.monotonic()
        if cache is not None and now - cache.checked_at < self.refresh_every:
            return cache
        with self._lock:
            cache = self._cache
            if cache is not None and time.monotonic() - cache.checked_at < self.refresh_every:
                return cache
            generation = self._generation()
            if cache is not None and cache.generation == generation:
                cache.checked_at = time.monotonic()
                return cache
            self._cache = self._load(generation)
            return self._cache

    def _load(self, generation: int) -> _Cache:
        with self.db.session() as s:
            rows = s.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
        signing: dict[str, Any] = {}
        published = []
        verify_keys = []
        for r in rows:
            key = _import(r.alg, self.sealer.open(r.private_enc, _aad(r.kid), legacy_aad=r.kid), r.kid)
            if r.state == "active":
                signing[r.alg] = key
            published.append({**r.public_jwk, "kid": r.kid, "alg": r.alg, "use": "sig"})
            if r.state in ("active", "retired"):
                verify_keys.append(key)
        body = json.dumps({"keys": published}, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return _Cache(generation, time.monotonic(), signing, KeySet(verify_keys), {"keys": published}, body, etag)

    def invalidate(self) -> None:
        self._cache = None

    # ---- use --------------------------------------------------------------------------

    def jwks(self) -> dict:
        return self._view().jwks

    def encoded_jwks(self) -> tuple[bytes, str]:
        """(the JWKS as bytes, its ETag): encoded once per key-ring generation."""
        view = self._view()
        return view.jwks_body, view.jwks_etag

    def encoded_jwks_if_fresh(self) -> tuple[bytes, str] | None:
        """The encoded JWKS without touching the database, while the cached view is fresh."""
        view = self._cache
        if view is None or time.monotonic() - view.checked_at >= self.refresh_every:
            return None
        return view.jwks_body, view.jwks_etag

    def active_kid(self, alg: str) -> str:
        return self._view().signing[alg].kid

    def sign(self, claims: dict, alg: str = "ES256", typ: str = "JWT") -> str:
        view = self._view()
        key = view.signing.get(alg)
        if key is None:
            raise ValueError(f"no active signing key for {alg}")
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key, algorithms=[alg])

    def verify(self, token: str, algs: tuple[str, ...] | None = None) -> jwt.Token:
        """Signature check against active and retired keys only; claims are the caller's job.
        joserfc refuses `none` and HS* here: only asymmetric algs of our own keys are allowed."""
        return jwt.decode(token, self._view().verify_set, algorithms=list(algs or self.algs))
