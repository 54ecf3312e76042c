"""Stable secrets: keys whose value must never change, whatever happens to the master key.

The pairwise-subject key makes every `sub` an agency holds, the client-secret pepper makes every
stored client-secret hash; changing either breaks every relying party. So each is a random
secret of its own, generated once per deployment and kept sealed under the KEK: rotating the
master key re-seals them and leaves their values alone.

A deployment that ran NIXA before stable secrets existed (signing keys, no stable secrets) used
values derived from the master key: those exact values become its stable secrets.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.store.db import Database
from idp.store.models import SigningKey, StableSecret
from keys.sealing import Sealer, place

# The names are the HKDF labels the master key derived them under before (keep them).
STABLE_SECRETS = ("pairwise-subject", "client-secret", "csrf", "access-token-person", "recovery-code")


def _aad(name: str) -> str:
    return place("stable_secrets", name, "sealed")


class StableSecrets:
    def __init__(self, db: Database, sealer: Sealer, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.sealer = sealer
        self.clock = clock
        self._values: dict[str, bytes] = {}

    def ensure(self) -> StableSecrets:
        """Create the missing ones, then read all. Two workers starting at once on a new database
        both insert-if-absent and read back, so they end up with the same values."""
        with self.db.session() as s:
            have = set(s.scalars(select(StableSecret.name)).all())
            deployed_before = not have and s.scalar(select(exists().where(SigningKey.kid.is_not(None))))
        for name in STABLE_SECRETS:
            if name in have:
                continue
            value = self.sealer.master.derive(name) if deployed_before else secrets.token_bytes(32)
            try:
                with self.db.session() as s:
                    s.add(StableSecret(name=name, sealed=self.sealer.seal(value, _aad(name)), created_at=self.clock()))
            except IntegrityError:
                pass  # another worker created it first: read theirs
        with self.db.session() as s:
            rows = s.scalars(select(StableSecret)).all()
            self._values = {r.name: self.sealer.open(r.sealed, _aad(r.name)) for r in rows}
        return self

    def __getitem__(self, name: str) -> bytes:
        return self._values[name]

    def reseal(self, s: Session, sealer: Sealer) -> int:
        rows = s.scalars(select(StableSecret)).all()
        for r in rows:
            r.sealed = sealer.reseal(r.sealed, _aad(r.name))
        return len(rows)

