"""The key ring: generate, store encrypted at rest, publish (JWKS), sign, verify, rotate.

Life of a key: pending (published, not signing) → active (signing) → retired (published,
verify-only until every token it signed has expired) → removed. Publishing the next key
before it signs lets relying parties cache the JWKS safely.

Rotation is race-safe across workers: it bumps `key_ring_state.generation` with a
compare-and-set; of two workers rotating at once exactly one wins, the other changes nothing.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import select, update

from idp.store.db import Database
from idp.store.models import KeyRingState, SigningKey

SUPPORTED_ALGS = ("ES256", "RS256", "EdDSA")


class MasterKey:
    """AES-256-GCM over key material; the key id is bound as associated data."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("the master key must be 32 bytes (base64url-encoded in NIXA_MASTER_KEY)")
        self._aead = AESGCM(raw)
        self._raw = raw

    @classmethod
    def from_b64(cls, value: str) -> MasterKey:
        return cls(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))

    @classmethod
    def load_or_create(cls, value: str, var_dir: Path) -> MasterKey:
        """From the environment; else the demo's throwaway key file (created at first start)."""
        if value:
            return cls.from_b64(value)
        path = var_dir / "master.key"
        if not path.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))
        return cls.from_b64(path.read_text().strip())

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """A separate key per purpose (client-secret hashing, CSRF, ...), never the master itself."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(hashes.SHA256(), length, salt=b"nixa", info=purpose.encode()).derive(self._raw)

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, aad: str) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], aad.encode())


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


@dataclass
class _Cache:
    generation: int
    checked_at: float
    signing: dict[str, Any]
    verify_set: KeySet
    jwks: dict


class KeyRing:
    def __init__(
        self,
        db: Database,
        master: MasterKey,
        *,
        algs: tuple[str, ...] = SUPPORTED_ALGS,
        retire_after: float = 3600,
        clock: Callable[[], float] = time.time,
        refresh_every: float = 5.0,
    ) -> None:
        self.db = db
        self.master = master
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
            private_enc=self.master.seal(key.as_pem(private=True), aad=kid),
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
            pending = s.scalars(select(SigningKey).where(SigningKey.alg == alg, SigningKey.state == "pending")).all()
            if pending:
                s.execute(update(SigningKey).where(SigningKey.kid == pending[0].kid).values(state="active", activated_at=now))
                for extra in pending[1:]:
                    s.delete(extra)
            else:
                s.add(self._new_row(alg, "active"))
            s.add(self._new_row(alg, "pending"))
        self._cache = None
        return True

    def prune(self) -> list[str]:
        """Remove retired keys whose every token has expired."""
        limit = self.clock() - self.retire_after
        with self.db.session() as s:
            old = s.scalars(select(SigningKey).where(SigningKey.state == "retired", SigningKey.retired_at < limit)).all()
            kids = [k.kid for k in old]
            for k in old:
                s.delete(k)
        self._cache = None
        return kids

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
            key = _import(r.alg, self.master.open(r.private_enc, aad=r.kid), r.kid)
            if r.state == "active":
                signing[r.alg] = key
            published.append({**r.public_jwk, "kid": r.kid, "alg": r.alg, "use": "sig"})
            if r.state in ("active", "retired"):
                verify_keys.append(key)
        return _Cache(generation, time.monotonic(), signing, KeySet(verify_keys), {"keys": published})

    def invalidate(self) -> None:
        self._cache = None

    # ---- use --------------------------------------------------------------------------

    def jwks(self) -> dict:
        return self._view().jwks

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
