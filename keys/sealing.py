"""Secrets at rest: a versioned key-encryption key (KEK) derived from the master key, and
AES-256-GCM seals for every secret NIXA keeps in its database (signing keys, stable secrets,
connector secrets).

A sealed value is `MAGIC | version (4 bytes) | nonce (12) | ciphertext+tag`, sealed under
KEK_v = HKDF-SHA256(master key of version v, info "nixa kek v<v>"). The associated data is the
header plus the value's place (`table/row/field`), so a blob altered, or copied to another row or
field, does not open.

`kek_versions` records each master key NIXA has used by its fingerprint (never the key); the
newest version is current. `nixa keys rotate-master` adds a version and re-seals every value
under it in one transaction, so the master key can change while every `sub` and client secret
stays as it was. A worker seals under the newest version whose master key it holds and opens
any version it holds a key for: NIXA_MASTER_KEY, plus NIXA_PREVIOUS_MASTER_KEY while a
multi-worker deployment switches keys.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import secrets
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.store.db import Database
from idp.store.models import KekVersion

MAGIC = b"NXS1"
HEADER = struct.Struct(">4sI")
NONCE_BYTES = 12


class MasterKeyProblem(RuntimeError):
    """NIXA cannot work with the master key it was given: a refusal to start, never a 500."""


class MasterKeyMissing(MasterKeyProblem):
    pass


class SealedValueRefused(MasterKeyProblem):
    """A sealed value that does not open: tampered, moved, or sealed under a key this worker
    does not hold."""


def place(table: str, row: str, field: str) -> str:
    """The associated data naming what a sealed value is."""
    return f"{table}/{row}/{field}"


class MasterKey:
    """The root secret (32 bytes, from NIXA_MASTER_KEY). Never used directly to seal: it yields
    a KEK per version."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("the master key must be 32 bytes (base64url-encoded in NIXA_MASTER_KEY)")
        self._raw = raw

    @classmethod
    def from_b64(cls, value: str) -> MasterKey:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except ValueError:
            raise ValueError("the master key must be base64url-encoded (NIXA_MASTER_KEY)") from None
        return cls(raw)

    @classmethod
    def configured(cls, value: str, var_dir: Path, *, demo: bool) -> MasterKey:
        """From the environment. Only the demo may fall back to a throwaway key file in its var
        dir (created at first start): anywhere else, a key that lives next to the data it
        protects protects nothing, so its absence is a refusal to start."""
        if value:
            return cls.from_b64(value)
        if not demo:
            raise MasterKeyMissing(
                "NIXA_MASTER_KEY (or NIXA_MASTER_KEY_FILE) is required outside the demo: 32 random bytes, "
                "base64url-encoded (e.g. `openssl rand -base64 32`), kept outside the database"
            )
        path = var_dir / "master.key"
        if not path.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))
        return cls.from_b64(path.read_text().strip())

    @property
    def fingerprint(self) -> str:
        """Names this key in `kek_versions` without revealing it (a keyed hash of a constant)."""
        return hmac.new(self._raw, b"nixa master key fingerprint", hashlib.sha256).hexdigest()

    def kek(self, version: int) -> AESGCM:
        return AESGCM(_hkdf(self._raw, f"nixa kek v{version}"))

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """The unversioned per-purpose keys NIXA derived before stable secrets existed. Only to
        initialise the stable secrets of a deployment that used them (keys/stable.py)."""
        return _hkdf(self._raw, purpose, length)

    def open_legacy(self, sealed: bytes, aad: str) -> bytes:
        """A signing key sealed before KEK versions: AES-GCM under the master key itself."""
        return AESGCM(self._raw).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad.encode())


def _hkdf(raw: bytes, info: str, length: int = 32) -> bytes:
    return HKDF(hashes.SHA256(), length, salt=b"nixa", info=info.encode()).derive(raw)


# Each owner of sealed values re-seals its rows inside the rotation's transaction.
Reseal = Callable[[Session, "Sealer"], int]


class Sealer:
    """Seals and opens values under the KEK versions of the master keys this worker holds."""

    def __init__(self, db: Database, master: MasterKey, previous: MasterKey | None = None, *, check_every: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.master = master
        self.clock = clock
        self.check_every = check_every
        self._held = {k.fingerprint: k for k in (previous, master) if k is not None}
        self._versions: dict[int, str] = {}  # version → fingerprint, as in kek_versions
        self._checked = float("-inf")
        self._pinned: int | None = None

    # ---- versions ----------------------------------------------------------------------------

    def start(self) -> int:
        """At worker start: a new database registers this master key as version 1 (two workers
        racing agree: insert-if-absent, then read). Otherwise the newest version must be one this
        worker holds, so a wrong or superseded key is a refusal to start, not a 500 later."""
        if not self._load_versions():
            try:
                with self.db.session() as s:
                    s.add(KekVersion(version=1, fingerprint=self.master.fingerprint, created_at=self.clock()))
            except IntegrityError:
                pass  # another worker registered version 1 first
            self._load_versions()
        newest = max(self._versions)
        if self._versions[newest] not in self._held:
            raise self._not_held(newest)
        return newest

    def _not_held(self, version: int) -> SealedValueRefused:
        mine = [v for v, fp in self._versions.items() if fp == self.master.fingerprint]
        if mine and mine[0] < version:
            return SealedValueRefused(
                f"NIXA_MASTER_KEY is master key version {mine[0]}, replaced by version {version} "
                "(nixa keys rotate-master): set NIXA_MASTER_KEY to the new key"
            )
        return SealedValueRefused(f"NIXA_MASTER_KEY is not this database's master key version {version}")

    def _load_versions(self) -> dict[int, str]:
        with self.db.session() as s:
            self._versions = dict(s.execute(select(KekVersion.version, KekVersion.fingerprint)).all())
        self._checked = time.monotonic()
        return self._versions

    def _sealing_version(self) -> tuple[int, MasterKey]:
        if self._pinned is not None:
            return self._pinned, self._held[self._versions[self._pinned]]
        if time.monotonic() - self._checked >= self.check_every or not self._versions:
            self._load_versions()  # a rotation elsewhere moves sealing to the new version within seconds
        if not self._versions:
            raise SealedValueRefused("no master key version is registered yet (start NIXA once)")
        newest = max(self._versions)
        key = self._held.get(self._versions[newest])
        if key is None:
            raise self._not_held(newest)
        return newest, key

    def _key_for(self, version: int) -> MasterKey:
        if version not in self._versions:
            self._load_versions()
        key = self._held.get(self._versions.get(version, ""))
        if key is None:
            raise self._not_held(version)
        return key

    # ---- seal and open -------------------------------------------------------------------------

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        version, key = self._sealing_version()
        header = HEADER.pack(MAGIC, version)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return header + nonce + key.kek(version).encrypt(nonce, plaintext, header + aad.encode())

    def open(self, blob: bytes, aad: str, *, legacy_aad: str | None = None) -> bytes:
        """`legacy_aad`: the value may also be a signing key sealed before KEK versions."""
        blob = bytes(blob)
        refused = SealedValueRefused(f"{aad}: the sealed value does not open (altered, moved, or another key)")
        if blob[:4] == MAGIC and len(blob) > HEADER.size + NONCE_BYTES:
            header, rest = blob[: HEADER.size], blob[HEADER.size:]
            version = HEADER.unpack(header)[1]
            try:
                return self._key_for(version).kek(version).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], header + aad.encode())
            except InvalidTag:
                pass
            except SealedValueRefused as exc:
                refused = exc
        if legacy_aad is not None:
            for key in self._held.values():
                try:
                    return key.open_legacy(blob, legacy_aad)
                except (InvalidTag, ValueError):
                    continue
        raise refused

    def version_of(self, blob: bytes) -> int | None:
        """The KEK version a blob is sealed under (None: from before versions)."""
        blob = bytes(blob)
        return HEADER.unpack(blob[: HEADER.size])[1] if blob[:4] == MAGIC and len(blob) >= HEADER.size else None

    # ---- rotation ------------------------------------------------------------------------------

    def rotate(self, new: MasterKey, owners: Iterable[Reseal]) -> tuple[int, int]:
        """Re-seal every sealed value under `new`, in one transaction: a new version, or the
        current one again when `new` already is it (finishing a rotation: values a worker still
        sealed under the old key during the switch). Returns (version, values re-sealed).
        Two rotations at once: the second fails on the version's primary key, nothing changes."""
        with self.db.session() as s:
            versions = dict(s.execute(select(KekVersion.version, KekVersion.fingerprint)).all())
            newest = max(versions)
            if versions[newest] == new.fingerprint:
                target = newest
            elif new.fingerprint in versions.values():
                raise MasterKeyProblem("the new master key was used before: choose a new one")
            else:
                target = newest + 1
                s.add(KekVersion(version=target, fingerprint=new.fingerprint, created_at=self.clock()))
                s.flush()
            pinned = copy.copy(self)
            pinned._held = {**self._held, new.fingerprint: new}
            pinned._versions = {**versions, target: new.fingerprint}
            pinned._pinned = target
            count = sum(owner(s, pinned) for owner in owners)
        self._held[new.fingerprint] = new  # this process goes on (audits the rotation) under the new version
        self._load_versions()
        return target, count

    def reseal(self, blob: bytes, aad: str, *, legacy_aad: str | None = None) -> bytes:
        return self.seal(self.open(blob, aad, legacy_aad=legacy_aad), aad)
