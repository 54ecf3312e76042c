"""The operations people run on the signing keys, for the CLI (`nixa keys …`) and the admin API:
list, rotate, retire, revoke, prune. Each change is audited with who asked (the actor the
caller passes: an admin of the API, or the CLI's OS user and host) and what it did.

The key ring (keys/ring.py) does the work and keeps it safe with several workers; this layer
says what happened in terms an operator and an auditor read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from idp.events import Events
from keys.ring import KeyRing


class UnknownKey(LookupError):
    """No signing key with that kid (never was, or already removed)."""


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    alg: str
    state: str  # pending | active | retired
    backend: str  # database | pkcs11
    created_at: float
    activated_at: float | None
    retired_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeyAdministration:
    def __init__(self, ring: KeyRing, events: Events) -> None:
        self.ring = ring
        self.events = events

    @property
    def backend(self) -> str:
        """Where new keys are made."""
        return self.ring.backend

    def list(self) -> list[KeyInfo]:
        return [KeyInfo(**k) for k in self.ring.describe()]

    def _emit(self, type_: str, actor: dict | None, data: dict) -> None:
        self.events.emit(type_, data={**data, **({"actor": actor} if actor else {})})

    def rotate(self, alg: str, *, actor: dict | None) -> bool:
        """pending → active, active → retired, a new pending. False: another worker rotated it at
        the same moment and nothing changed here (not audited: the winner's rotation is)."""
        if alg not in self.ring.algs:
            raise ValueError(f"unknown alg {alg} (one of {', '.join(self.ring.algs)})")
        before = {k.state: k.kid for k in self.list() if k.alg == alg and k.state != "retired"}
        if not self.ring.rotate(alg):
            return False
        after = {k.state: k.kid for k in self.list() if k.alg == alg and k.state != "retired"}
        self._emit("key.rotated", actor, {"alg": alg, "active": after.get("active"), "retired": before.get("active"),
                                          "published": after.get("pending"), "backend": self.ring.backend})
        return True

    def retire(self, kid: str, *, actor: dict | None) -> dict:
        """Stop one key signing; it verifies what it signed until prune removes it."""
        done = self.ring.retire(kid)
        if done is None:
            raise UnknownKey(kid)
        if done["changed"]:
            self._emit("key.retired", actor, self._what(done))
        return done

    def revoke(self, kid: str, *, actor: dict | None, reason: str = "") -> dict:
        """A compromised key: out of the JWKS and no longer trusted, at once, whatever its state."""
        done = self.ring.revoke(kid)
        if done is None:
            raise UnknownKey(kid)
        self._emit("key.revoked", actor, {**self._what(done), **({"reason": reason} if reason else {})})
        return done

    def prune(self, *, actor: dict | None) -> list[str]:
        removed = self.ring.prune()
        if removed:
            self._emit("key.pruned", actor, {"kids": removed})
        return removed

    def _what(self, done: dict) -> dict:
        """The audit data of a retire or revoke: the key, where it was, and what signs now."""
        data = {"kid": done["kid"], "alg": done["alg"], "was": done["state"], "backend": done["backend"]}
        if done["state"] == "active":
            data["now_active"] = self.ring.active_kid(done["alg"])
        if done["made"]:
            data["published"] = done["made"][-1]
        return data
