"""The key ring: generate, store encrypted at rest, publish (JWKS), sign, verify, rotate.

Life of a key: pending (published, not signing) → active (signing) → retired (published,
verify-only until every token it signed has expired) → removed. Publishing the next key
before it signs lets relying parties cache the JWKS safely.

Rotation is race-safe across workers: it bumps `key_ring_state.generation` with a
compare-and-set; of two workers rotating at once exactly one wins, the other changes nothing.
Every change to the set of keys (rotate, prune, revoke) bumps the generation, which is how
other workers learn within seconds to stop publishing and trusting a removed key.
Private keys are sealed under the KEK (keys/sealing.py), bound to their row, or generated and
kept inside a PKCS#11 HSM (keys/pkcs11.py): each row names its backend, so a deployment moving
to the HSM keeps verifying its older keys while the new ones sign in the token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from idp.store.cache import REFRESH_AHEAD
from idp.store.db import Database
from idp.store.models import KeyRingState, SigningKey
from keys.pkcs11 import Hsm, HsmProblem
from keys.sealing import MasterKey, Sealer, place  # noqa: F401  MasterKey: re-exported for older imports

log = logging.getLogger("nixa")

SUPPORTED_ALGS = ("ES256", "RS256", "EdDSA")
BACKENDS = ("database", "pkcs11")


def _generate(alg: str, kid: str) -> ECKey | RSAKey | OKPKey:
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters=params, private=True)
    raise ValueError(f"unsupported alg {alg}")


def _import(alg: str, material: bytes | dict, kid: str) -> ECKey | RSAKey | OKPKey:
    """A private key from its PEM, or a public one from its JWK."""
    params = {"kid": kid, "alg": alg, "use": "sig"}
    cls = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}[alg]
    return cls.import_key(material, parameters=params)


@dataclass(frozen=True)
class _Signer:
    """The active key of an alg: a joserfc private key (database), or the public key with a
    registry whose algorithm signs inside the HSM."""

    key: ECKey | RSAKey | OKPKey
    registry: JWSRegistry | None = None

    @property
    def kid(self) -> str:
        return self.key.kid


def _aad(kid: str) -> str:
    return place("signing_keys", kid, "private_enc")


@dataclass
class _Cache:
    generation: int
    checked_at: float
    signing: dict[str, _Signer]
    verify_set: KeySet
    jwks: dict
    jwks_body: bytes = b""  # the JWKS encoded once per generation, and its ETag
    jwks_etag: str = ""
    # Tokens whose signature this view's keys verified, by their exact text: a bearer token is
    # presented again and again (UserInfo, introspection) and the same bytes verify the same way
    # under the same keys. A new generation (a key revoked, rotated, pruned) is a new view and
    # starts empty. Only the signature is remembered; expiry and revocation are checked by the
    # caller at every request.
    verified: dict[str, Any] = field(default_factory=dict)


VERIFIED_CACHE = 20_000  # tokens per worker (a few KB each): cleared when full


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
        backend: str = "database",
        hsm: Hsm | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown key backend {backend!r} (one of {', '.join(BACKENDS)})")
        if backend == "pkcs11" and hsm is None:
            raise HsmProblem("the pkcs11 key backend needs the HSM (NIXA_PKCS11_MODULE, NIXA_PKCS11_TOKEN_LABEL, NIXA_PKCS11_PIN)")
        self.db = db
        self.sealer = sealer
        self.backend = backend  # where new keys are made; existing ones stay where they are
        self.hsm = hsm
        self.algs = algs
        self.retire_after = retire_after  # longest token lifetime + grace
        self.clock = clock
        self.refresh_every = refresh_every
        self._cache: _Cache | None = None
        self._lock = threading.Lock()
        self._lock_soon = threading.Lock()
        self._checking = False  # a background generation check under way (fresh)

    # ---- lifecycle -----------------------------------------------------------------

    def ensure(self) -> list[str]:
        """Make sure every alg has an active and a pending key (first start, new alg); the kids made."""
        made: list[str] = []
        for alg in self.algs:
            with self._making(made), self.db.session() as s:
                state = s.get(KeyRingState, alg)
                if state is None:
                    s.add(KeyRingState(alg=alg, generation=0, rotated_at=self.clock()))
                    try:
                        s.flush()
                    except Exception:
                        s.rollback()
                        continue  # another worker made it (before any key was generated)
                    s.add(self._new_row(alg, "active", made))
                    s.add(self._new_row(alg, "pending", made))
        self._cache = None
        return made

    @contextmanager
    def _making(self, made: list[str]) -> Iterator[None]:
        """Keys generated in the HSM for a transaction that then fails are destroyed again: a
        worker that loses a race leaves nothing behind in the token."""
        before = len(made)
        try:
            yield
        except BaseException:
            self._destroy_in_hsm(made[before:])
            del made[before:]
            raise

    def _new_row(self, alg: str, state: str, made: list[str]) -> SigningKey:
        kid = f"{alg.lower()}-{secrets.token_urlsafe(9)}"
        now = self.clock()
        if self.backend == "pkcs11":
            assert self.hsm is not None
            public_jwk, private_enc = self.hsm.generate(alg, kid), b""  # the private half never leaves the token
        else:
            key = _generate(alg, kid)
            public_jwk, private_enc = key.as_dict(private=False), self.sealer.seal(key.as_pem(private=True), _aad(kid))
        made.append(kid)
        return SigningKey(
            kid=kid,
            alg=alg,
            state=state,
            backend=self.backend,
            private_enc=private_enc,
            public_jwk=public_jwk,
            created_at=now,
            activated_at=now if state == "active" else None,
        )

    def _destroy_in_hsm(self, kids: list[str]) -> None:
        """After the rows are gone (or never were): the token's copies go too. A failure here
        leaves an unused object in the token, never a key NIXA publishes or trusts."""
        if not kids or self.hsm is None:
            return
        for kid in kids:
            try:
                self.hsm.destroy(kid)
            except Exception as exc:  # noqa: BLE001
                log.warning("signing key %s could not be destroyed in the HSM (%s); it is unused: remove it by hand", kid,
                            type(exc).__name__)

    def rotate(self, alg: str) -> bool:
        """pending → active, active → retired, a new pending. False if another worker won."""
        made: list[str] = []
        with self._making(made), self.db.session() as s:
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
            dropped = self._promote_pending(s, alg, now, made)
        self._destroy_in_hsm(dropped)
        self._cache = None
        return True

    def _promote_pending(self, s: Session, alg: str, now: float, made: list[str]) -> list[str]:
        """The published next key starts signing (relying parties have it already); a new one is
        published behind it. The kids of HSM keys dropped (extra pending ones), to destroy after commit."""
        pending = s.scalars(select(SigningKey).where(SigningKey.alg == alg, SigningKey.state == "pending")).all()
        dropped = []
        if pending:
            s.execute(update(SigningKey).where(SigningKey.kid == pending[0].kid).values(state="active", activated_at=now))
            for extra in pending[1:]:
                if extra.backend == "pkcs11":
                    dropped.append(extra.kid)
                s.delete(extra)
        else:
            s.add(self._new_row(alg, "active", made))
        s.add(self._new_row(alg, "pending", made))
        return dropped

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
            in_hsm = [k.kid for k in old if k.backend == "pkcs11"]
            for alg in sorted({k.alg for k in old}):
                self._bump(s, alg)
            for k in old:
                s.delete(k)
        self._destroy_in_hsm(in_hsm)
        self._cache = None
        return kids

    def revoke(self, kid: str) -> dict | None:
        """A compromised key: deleted now, whatever its state, so no worker publishes it or
        verifies a token signed by it once it re-reads the generation. If it was signing, the
        pending key takes over at once. None when there is no such key (or another worker
        revoked it meanwhile). In the HSM, its objects are destroyed."""
        done = self._leave(kid, lambda state: delete(SigningKey).where(SigningKey.kid == kid))
        if done is None or not done["changed"]:
            return None
        if done["backend"] == "pkcs11":
            self._destroy_in_hsm([kid])
        return done

    def retire(self, kid: str) -> dict | None:
        """Stop a key signing (or, pending, ever signing) while it still verifies what it signed,
        until prune removes it. An active key hands over to the published pending one. Of two
        workers retiring the same key at once one does it; the other is told it was already
        retired ("changed": False). None when there is no such key."""
        return self._leave(kid, lambda state: None if state == "retired" else update(SigningKey).where(
            SigningKey.kid == kid, SigningKey.state == state).values(state="retired", retired_at=self.clock()))

    def _leave(self, kid: str, statement: Callable[[str], Any]) -> dict | None:
        """One key leaves its place by `statement(its state)` (None: nothing to do), under the
        ring's row lock; if it was active or pending, the next one takes its place."""
        made: list[str] = []
        dropped: list[str] = []
        with self._making(made), self.db.session() as s:
            row = s.get(SigningKey, kid)
            if row is None:
                return None
            done = {"kid": kid, "alg": row.alg, "state": row.state, "backend": row.backend, "changed": False, "made": made}
            change = statement(row.state)
            if change is None:
                return done
            self._bump(s, row.alg)  # first: holds the ring's row, so a rotation at the same time waits, then loses its compare-and-set
            if s.execute(change).rowcount != 1:
                s.rollback()
                return done  # someone else did it meanwhile
            if done["state"] == "active":
                dropped = self._promote_pending(s, done["alg"], self.clock(), made)
            elif done["state"] == "pending":
                s.add(self._new_row(done["alg"], "pending", made))
            done["changed"] = True
        self._destroy_in_hsm(dropped)
        self._cache = None
        return done

    def reseal(self, s: Session, sealer: Sealer) -> int:
        """Re-seal every private key under the sealer's KEK version (master-key rotation)."""
        rows = s.scalars(select(SigningKey).where(SigningKey.backend == "database")).all()  # HSM keys are not sealed here
        for r in rows:
            r.private_enc = sealer.reseal(r.private_enc, _aad(r.kid), legacy_aad=r.kid)
        return len(rows)

    def describe(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(select(SigningKey).order_by(SigningKey.alg, SigningKey.created_at)).all()
            return [
                {"kid": r.kid, "alg": r.alg, "state": r.state, "backend": r.backend, "created_at": r.created_at,
                 "activated_at": r.activated_at, "retired_at": r.retired_at}
                for r in rows
            ]

    # ---- cached view for the hot path -----------------------------------------------

    def _generation(self) -> int:
        with self.db.session() as s:
            return sum(s.scalars(select(KeyRingState.generation)).all()) + len(s.scalars(select(KeyRingState.alg)).all())

    def _view(self, max_age: float | None = None) -> _Cache:
        max_age = self.refresh_every if max_age is None else max_age
        cache = self._cache
        if cache is not None and time.monotonic() - cache.checked_at < max_age:
            return cache
        with self._lock:
            cache = self._cache
            if cache is not None and time.monotonic() - cache.checked_at < max_age:
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
        signing: dict[str, _Signer] = {}
        published = []
        verify_keys = []
        for r in rows:
            if r.backend == "pkcs11":
                key = _import(r.alg, r.public_jwk, r.kid)  # verifying needs the public half only
                if r.state == "active":
                    signing[r.alg] = _Signer(key, self._hsm_for(r.kid))
            else:
                key = _import(r.alg, self.sealer.open(r.private_enc, _aad(r.kid), legacy_aad=r.kid), r.kid)
                if r.state == "active":
                    signing[r.alg] = _Signer(key)
            published.append({**r.public_jwk, "kid": r.kid, "alg": r.alg, "use": "sig"})
            if r.state in ("active", "retired"):
                verify_keys.append(key)
        body = json.dumps({"keys": published}, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return _Cache(generation, time.monotonic(), signing, KeySet(verify_keys), {"keys": published}, body, etag)

    def _hsm_for(self, kid: str) -> JWSRegistry:
        """The registry that signs with this active key in the HSM, once the token has it."""
        if self.hsm is None:
            raise HsmProblem(f"the active signing key {kid} lives in an HSM: set NIXA_PKCS11_MODULE, NIXA_PKCS11_TOKEN_LABEL "
                             "and NIXA_PKCS11_PIN (rotate twice with the HSM reachable to move the signing keys back into the database)")
        self.hsm.check(kid)
        return self.hsm.registry

    def check_hsm(self) -> str:
        """The token answers and holds every active key that signs in it (the readiness probe)."""
        assert self.hsm is not None
        in_token = [s.kid for s in self._view().signing.values() if s.registry is not None]
        for kid in in_token:
            self.hsm.check(kid)
        return f"{len(in_token)} active key(s) in token {self.hsm.token_label!r}"

    def invalidate(self) -> None:
        self._cache = None

    # ---- use --------------------------------------------------------------------------

    def jwks(self) -> dict:
        return self._view().jwks

    def encoded_jwks(self) -> tuple[bytes, str]:
        """(the JWKS as bytes, its ETag): encoded once per key-ring generation."""
        view = self._view()
        return view.jwks_body, view.jwks_etag

    def fresh(self) -> bool:
        """Whether signing now would not ask the database (the cached view is not due for its
        generation check): a hot path may then sign on the event loop. In the view's last fifth
        the check is made in the background, so the hot paths do not all find it due at once
        and leave the loop for it (every `refresh_every` seconds); it is never older than that."""
        view = self._cache
        if view is None:
            return False
        age = time.monotonic() - view.checked_at
        if age >= self.refresh_every * REFRESH_AHEAD:
            self._check_soon()
        return age < self.refresh_every

    def _check_soon(self) -> None:
        with self._lock_soon:
            if self._checking:
                return
            self._checking = True

        def check() -> None:
            try:
                self._view(self.refresh_every * REFRESH_AHEAD)
            except Exception:  # noqa: BLE001 -- the view then falls due, and the next signer checks (and meets the error)
                log.warning("the key ring's background generation check failed", exc_info=True)
            finally:
                self._checking = False

        threading.Thread(target=check, name="nixa-key-ring-check", daemon=True).start()

    def encoded_jwks_if_fresh(self) -> tuple[bytes, str] | None:
        """The encoded JWKS without touching the database, while the cached view is fresh."""
        if not self.fresh():
            return None
        view = self._cache
        return view.jwks_body, view.jwks_etag

    def active_kid(self, alg: str) -> str:
        return self._view().signing[alg].kid

    def sign(self, claims: dict, alg: str = "ES256", typ: str = "JWT") -> str:
        view = self._view()
        signer = view.signing.get(alg)
        if signer is None:
            raise ValueError(f"no active signing key for {alg}")
        return jwt.encode({"alg": alg, "kid": signer.kid, "typ": typ}, claims, signer.key, algorithms=[alg], registry=signer.registry)

    def verify(self, token: str, algs: tuple[str, ...] | None = None) -> jwt.Token:
        """Signature check against active and retired keys only; claims are the caller's job.
        joserfc refuses `none` and HS* here: only asymmetric algs of our own keys are allowed."""
        view = self._view()
        allowed = algs or self.algs
        known = view.verified.get(token)
        if known is not None and known.header.get("alg") in allowed:
            return jwt.Token(dict(known.header), dict(known.claims))  # the caller's own copy
        decoded = jwt.decode(token, view.verify_set, algorithms=list(allowed))
        if len(view.verified) >= VERIFIED_CACHE:
            view.verified.clear()
        view.verified[token] = decoded
        return decoded
