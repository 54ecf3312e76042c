"""What makes the audit trail tamper-evident: a keyed chain value per row and signed checkpoints.

A plain hash chain only proves that the rows agree with each other: whoever can write the
database can rewrite a row and recompute every later hash. Each row's chain value is therefore
an HMAC-SHA256 under an audit key that is not in the database. A chain says nothing about rows
deleted from its end, so the writer also records checkpoints: a JWS by the key ring naming the
last event, its chain value and the number of events up to it. A checkpoint kept outside NIXA
(`nixa audit checkpoint --out FILE`) catches a chain that is shorter than it was.

Chain values: `h1:<key id>:<base64url HMAC>` (55 characters, fits the 64-character column, so
no migration). Rows written by older versions hold a bare 64-hex SHA-256 and still verify; an
unkeyed row after a keyed one is a rewrite without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc.errors import JoseError

from keys.ring import KeyRing
from keys.sealing import MasterKey

GENESIS = "0" * 64
KEYED_PREFIX = "h1:"
CHECKPOINT_TYPE = "audit.checkpoint"
CHECKPOINT_TYP = "nixa-audit-checkpoint+jwt"
# HKDF label of the audit key when NIXA_AUDIT_KEY is not set (keys/ring.py MasterKey.derive).
DERIVED_KEY_LABEL = "audit-chain"


class ChainedEvent(Protocol):
    at: float
    type: str
    person_id: str | None
    client_id: str | None
    ip: str | None
    data: dict[str, Any]


def _body(event: ChainedEvent) -> bytes:
    return json.dumps(
        [event.at, event.type, event.person_id, event.client_id, event.ip, event.data],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    ).encode()


def legacy_chain_hash(prev: str, event: ChainedEvent) -> str:
    """The unkeyed chain of versions before the audit key: verified, never written."""
    return hashlib.sha256(prev.encode() + _body(event)).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key(value: str, setting: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{setting}: an audit key is 32 bytes, base64url-encoded")
    return raw


def encode_key(raw: bytes) -> str:
    return _b64(raw)


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so a row says which key made it."""
    return _b64(hmac.new(key, b"nixa audit key id", hashlib.sha256).digest())[:8]


def derived_key(master: MasterKey) -> bytes:
    """The audit key when NIXA_AUDIT_KEY is not set; it changes with the master key, which is
    why `nixa audit pin-key` exists."""
    return master.derive(DERIVED_KEY_LABEL)


class AuditKeys:
    """The current key makes chain values; previous keys (after an audit-key rotation) only
    verify the rows they made. Rows carry the key id, so a key change is explained rather than
    looking like tampering."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self.kid = key_id(current)
        self._keys = {key_id(k): k for k in previous}
        self._keys[self.kid] = current

    @classmethod
    def from_settings(cls, audit_key: str, previous_keys: str, master: MasterKey) -> AuditKeys:
        """NIXA_AUDIT_KEY when set (independent of the master key, so it survives a master-key
        rotation); otherwise derived from the master key under a fixed label."""
        current = decode_key(audit_key, "NIXA_AUDIT_KEY") if audit_key else derived_key(master)
        previous = [decode_key(v.strip(), "NIXA_AUDIT_PREVIOUS_KEYS") for v in previous_keys.split(",") if v.strip()]
        return cls(current, previous)

    def chain_value(self, prev: str, event: ChainedEvent) -> str:
        return f"{KEYED_PREFIX}{self.kid}:{self._mac(self._keys[self.kid], prev, event)}"

    def problem(self, prev: str, event: ChainedEvent, value: str) -> str | None:
        """Why a keyed chain value is wrong, or None when it is right."""
        kid, _, _ = value[len(KEYED_PREFIX):].partition(":")
        key = self._keys.get(kid)
        if key is None:
            return f"it is keyed with audit key {kid!r}, which this NIXA does not hold (list it in NIXA_AUDIT_PREVIOUS_KEYS)"
        expected = f"{KEYED_PREFIX}{kid}:{self._mac(key, prev, event)}"
        if not hmac.compare_digest(expected, value):
            return "its chain value does not match its content (edited, or recomputed without the audit key)"
        return None

    @staticmethod
    def _mac(key: bytes, prev: str, event: ChainedEvent) -> str:
        return _b64(hmac.new(key, prev.encode() + _body(event), hashlib.sha256).digest())


class InvalidCheckpoint(ValueError):
    """A checkpoint this NIXA did not sign, or not a checkpoint at all."""


@dataclass(frozen=True)
class Checkpoint:
    event_id: int  # the last event it covers
    chain: str  # that event's chain value
    count: int  # events up to and including it
    at: float
    issuer: str


class Checkpoints:
    """Signs checkpoints with the key ring and decides when the writer owes one."""

    def __init__(self, ring: KeyRing, issuer: str, alg: str, *, every: int, seconds: float) -> None:
        self.ring = ring
        self.issuer = issuer
        self.alg = alg
        self.every = every
        self.seconds = seconds

    def due(self, latest: Checkpoint | None, last_id: int, now: float) -> bool:
        if latest is None:
            return True
        return last_id - latest.event_id >= self.every or now - latest.at >= self.seconds

    def sign(self, checkpoint: Checkpoint) -> str:
        claims = {"iss": checkpoint.issuer, "iat": int(checkpoint.at), "event_id": checkpoint.event_id,
                  "chain": checkpoint.chain, "count": checkpoint.count}
        return self.ring.sign(claims, self.alg, typ=CHECKPOINT_TYP)

    def read(self, token: str) -> Checkpoint:
        """Signature by one of the ring's published verify keys (active or retired), then shape."""
        try:
            decoded = self.ring.verify(token.strip())
        except (JoseError, ValueError) as exc:
            raise InvalidCheckpoint(f"not signed by this NIXA's key ring ({type(exc).__name__})") from None
        claims = decoded.claims
        if decoded.header.get("typ") != CHECKPOINT_TYP:
            raise InvalidCheckpoint("a signed token, but not an audit checkpoint")
        if claims.get("iss") != self.issuer:
            raise InvalidCheckpoint(f"made by {claims.get('iss')!r}, not by {self.issuer}")
        fields = (claims.get("event_id"), claims.get("chain"), claims.get("count"), claims.get("iat"))
        if not (isinstance(fields[0], int) and isinstance(fields[1], str) and isinstance(fields[2], int) and isinstance(fields[3], int)):
            raise InvalidCheckpoint("its claims are incomplete")
        return Checkpoint(fields[0], fields[1], fields[2], float(fields[3]), self.issuer)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    bad_event: int | None = None
    reason: str = ""
    legacy: int = 0  # unkeyed rows from versions before the audit key

    def line(self) -> str:
        if self.ok:
            legacy = f", {self.legacy} of them unkeyed from an older version" if self.legacy else ""
            return f"audit chain intact: {self.events} events{legacy}"
        return f"audit chain broken at event {self.bad_event}: {self.reason}"


class ChainCheck:
    """Walks the rows in id order; the first problem ends the walk."""

    def __init__(self, keys: AuditKeys, checkpoint: Checkpoint | None = None) -> None:
        self.keys = keys
        self.checkpoint = checkpoint
        self.prev = GENESIS
        self.prev_id: int | None = None
        self.count = 0
        self.legacy = 0
        self.keyed_seen = False
        self.checkpoint_seen = False

    def broken(self, event_id: int | None, reason: str) -> ChainReport:
        return ChainReport(False, self.count, event_id, reason, self.legacy)

    def row(self, row: Any) -> ChainReport | None:
        """None while intact; the report of the first broken row otherwise."""
        cp = self.checkpoint
        if cp is not None and not self.checkpoint_seen and row.id > cp.event_id:
            return self.broken(cp.event_id, "the event the checkpoint names is missing (deleted)")
        self.count += 1
        problem = self._problem(row)
        if problem:
            return self.broken(row.id, problem)
        if cp is not None and row.id == cp.event_id:
            self.checkpoint_seen = True
            # Every chain value depends on all before it, so this also catches rows deleted or
            # inserted before the event: the count in the checkpoint is for the auditor's eyes.
            if row.hash != cp.chain:
                return self.broken(row.id, "its chain value differs from the checkpoint's (the chain was rewritten)")
        self.prev, self.prev_id = row.hash, row.id
        return None

    def _problem(self, row: Any) -> str | None:
        if row.prev_hash != self.prev:
            after = f"event {self.prev_id}" if self.prev_id is not None else "the start of the chain"
            return f"it does not follow {after} (a row between them was deleted or rewritten)"
        if row.hash.startswith(KEYED_PREFIX):
            self.keyed_seen = True
            return self.keys.problem(self.prev, row, row.hash)
        if self.keyed_seen:
            return "an unkeyed row after keyed ones (recomputed without the audit key)"
        self.legacy += 1
        if row.hash != legacy_chain_hash(self.prev, row):
            return "its hash does not match its content (edited)"
        return None

    def end(self) -> ChainReport:
        cp = self.checkpoint
        if cp is not None and not self.checkpoint_seen:
            last = f"event {self.prev_id}" if self.prev_id is not None else "nothing"
            return self.broken(cp.event_id, f"the chain ends at {last}, before the checkpoint's event (rows deleted from the end)")
        return ChainReport(True, self.count, legacy=self.legacy)
