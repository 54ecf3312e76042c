"""The keyed audit chain and its signed checkpoints, attacked the ways a database writer can.

Each test has a NIXA of its own on a fresh database: the session's shared NIXA writes audit
events concurrently through its group-commit writer, which would race with the tampering."""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, delete, select, text, update
from typer.testing import CliRunner

from admin.cli import app as cli_app
from idp.audit_chain import CHECKPOINT_TYP, CHECKPOINT_TYPE, DERIVED_KEY_LABEL, AuditKeys, legacy_chain_hash
from idp.store.models import AuditEvent
from keys.sealing import MasterKey
from tests.conftest import DB_URL, REDIS_URL, make_settings


def _fresh_database(tmp_path: Path) -> tuple[str, str | None]:
    """(url, database name to drop afterwards)."""
    if not DB_URL:
        return f"sqlite:///{(tmp_path / 'audit.db').as_posix()}", None
    name = f"audit_{uuid.uuid4().hex[:12]}"
    admin = create_engine(DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return DB_URL.rsplit("/", 1)[0] + f"/{name}", name


class Trail:
    """A NIXA with its own audit trail, plus the command line pointed at it."""

    def __init__(self, tmp_path: Path, master_key: str, **settings: object) -> None:
        from idp.app import Nixa
        from idp.store.db import migrate

        self.url, self.database = _fresh_database(tmp_path)
        migrate(self.url)
        self.var_dir = tmp_path
        self.master_key = master_key
        self.nixa = Nixa(make_settings(tmp_path, self.url, master_key, **settings))
        self.env = {"NIXA_DATABASE_URL": self.url, "NIXA_VAR_DIR": str(tmp_path), "NIXA_MASTER_KEY": master_key,
                    "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": "http://testserver"}

    def cli(self, *args: str, **env: str):  # noqa: ANN201
        return CliRunner().invoke(cli_app, list(args), env={**self.env, **env}, catch_exceptions=False)

    def emit(self, count: int) -> None:
        for i in range(count):
            self.nixa.events.emit("admin.changed", person_id=f"p{i}", data={"change": i, "who": "Nguyễn Văn An"})

    def rows(self) -> list[AuditEvent]:
        with self.nixa.db.session() as s:
            return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))

    def verify(self, checkpoint: Path | None = None):  # noqa: ANN201
        return self.cli("audit", "verify", *(["--checkpoint", str(checkpoint)] if checkpoint else []))

    def export_checkpoint(self) -> Path:
        out = self.var_dir / f"checkpoint-{uuid.uuid4().hex[:6]}.jws"
        r = self.cli("audit", "checkpoint", "--out", str(out))
        assert r.exit_code == 0, r.output
        return out

    def recompute_from(self, first_id: int, chain_value) -> None:  # noqa: ANN001
        """What an attacker with write access does after an edit: make every later row agree."""
        rows = self.rows()
        prev = next(r.hash for r in reversed(rows) if r.id < first_id)
        with self.nixa.db.session() as s:
            for row in (r for r in rows if r.id >= first_id):
                value = chain_value(prev, row)
                s.execute(update(AuditEvent).where(AuditEvent.id == row.id).values(prev_hash=prev, hash=value))
                prev = value

    def close(self) -> None:
        self.nixa.audit.close()  # its writer would keep checkpointing a database about to be dropped
        self.nixa.db.engine.dispose()
        if self.database:
            admin = create_engine(DB_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture()
def trail(tmp_path, master_key):  # noqa: ANN001, ANN201
    t = Trail(tmp_path, master_key)
    yield t
    t.close()


def edit(trail: Trail, row: AuditEvent, **data: object) -> None:
    with trail.nixa.db.session() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == row.id).values(data={**row.data, **data}))


def covered_by(trail: Trail, held: Path) -> int:
    return trail.nixa.keys.verify(held.read_text().strip()).claims["event_id"]


def failed_at(result, event_id: int) -> bool:  # noqa: ANN001
    return result.exit_code == 1 and f"broken at event {event_id}:" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_intact_chain_passes_with_and_without_a_checkpoint(trail):  # noqa: ANN001
    trail.emit(5)
    held = trail.export_checkpoint()
    trail.emit(3)  # written after the export: the checkpoint still holds
    for result in (trail.verify(), trail.verify(held)):
        assert result.exit_code == 0, result.output
        assert "audit chain intact" in result.stdout
    assert all(r.hash.startswith("h1:") for r in trail.rows())


def test_an_edited_row_is_caught(trail):  # noqa: ANN001
    trail.emit(6)
    victim = [r for r in trail.rows() if r.type == "admin.changed"][2]
    edit(trail, victim, change="forged")
    assert failed_at(trail.verify(), victim.id)


def test_a_deleted_middle_row_is_caught(trail):  # noqa: ANN001
    trail.emit(6)
    rows = trail.rows()
    victim, follower = rows[3], rows[4]
    with trail.nixa.db.session() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id == victim.id))
    result = trail.verify()
    assert failed_at(result, follower.id) and "does not follow" in result.stderr


def test_rows_deleted_from_the_end_are_caught_by_the_checkpoint(trail):  # noqa: ANN001
    trail.emit(6)
    held = trail.export_checkpoint()
    covered = [r for r in trail.rows() if r.type != CHECKPOINT_TYPE][-1]
    with trail.nixa.db.session() as s:  # the last three events and every checkpoint row after them
        cut = s.scalars(select(AuditEvent.id).where(AuditEvent.type != CHECKPOINT_TYPE).order_by(AuditEvent.id.desc()).limit(3)).all()
        s.execute(delete(AuditEvent).where(AuditEvent.id >= min(cut)))
    assert trail.verify().exit_code == 0  # a shorter chain is still a chain: this is what checkpoints are for
    result = trail.verify(held)
    assert failed_at(result, covered.id) and "deleted from the end" in result.stderr


def test_the_checkpointed_event_deleted_with_a_recomputed_tail_is_caught(trail):  # noqa: ANN001
    trail.emit(4)
    held = trail.export_checkpoint()
    trail.emit(3)
    covered = covered_by(trail, held)
    with trail.nixa.db.session() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id == covered))
    trail.recompute_from(covered + 1, trail.nixa.audit.keys.chain_value)  # even with the real key
    result = trail.verify(held)
    assert failed_at(result, covered) and "missing" in result.stderr


def test_rewrite_and_recompute_with_plain_sha256_is_caught(trail):  # noqa: ANN001
    trail.emit(6)
    victim = [r for r in trail.rows() if r.type == "admin.changed"][3]
    edit(trail, victim, change="forged")
    trail.recompute_from(victim.id, legacy_chain_hash)
    result = trail.verify()
    assert failed_at(result, victim.id) and "unkeyed" in result.stderr


def test_the_whole_chain_rewritten_as_plain_sha256_is_caught_by_the_checkpoint(trail):  # noqa: ANN001
    trail.emit(6)
    held = trail.export_checkpoint()
    first = trail.rows()[0]
    edit(trail, first, change="forged")
    with trail.nixa.db.session() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == first.id).values(hash=legacy_chain_hash("0" * 64, trail.rows()[0])))
    trail.recompute_from(trail.rows()[1].id, legacy_chain_hash)
    covered = covered_by(trail, held)
    assert failed_at(trail.verify(held), covered)


@pytest.mark.parametrize("keep_key_id", [True, False], ids=["real-key-id", "own-key-id"])
def test_rewrite_and_recompute_with_a_guessed_key_is_caught(trail, keep_key_id):  # noqa: ANN001
    trail.emit(6)
    victim = [r for r in trail.rows() if r.type == "admin.changed"][3]
    real_kid = trail.nixa.audit.keys.kid
    guessed = AuditKeys(MasterKey(bytes(32)).derive(DERIVED_KEY_LABEL))  # the right construction, a guessed master key

    def forged(prev: str, row: AuditEvent) -> str:
        value = guessed.chain_value(prev, row)
        return value.replace(guessed.kid, real_kid, 1) if keep_key_id else value

    edit(trail, victim, change="forged")
    trail.recompute_from(victim.id, forged)
    result = trail.verify()
    assert failed_at(result, victim.id)
    assert ("does not match its content" if keep_key_id else "does not hold") in result.stderr


def test_a_checkpoint_signed_by_a_foreign_key_is_refused(trail):  # noqa: ANN001
    trail.emit(3)
    genuine = trail.export_checkpoint()
    token = genuine.read_text().strip()
    decoded = trail.nixa.keys.verify(token)
    header, claims = decoded.header, decoded.claims
    foreign = ECKey.generate_key("P-256", parameters={"kid": header["kid"]}, private=True)  # the kid is spoofed too
    forged = trail.var_dir / "forged.jws"
    forged.write_text(jwt.encode(dict(header), {**claims, "event_id": claims["event_id"] - 1}, foreign, algorithms=["ES256"]))
    result = trail.verify(forged)
    assert result.exit_code == 2 and "refused" in result.stderr and "not signed by this NIXA" in result.stderr
    not_a_checkpoint = trail.var_dir / "id-token.jws"
    not_a_checkpoint.write_text(trail.nixa.keys.sign({"iss": "http://testserver", "event_id": 1, "chain": "x", "count": 1, "iat": 1}))
    assert trail.verify(not_a_checkpoint).exit_code == 2
    assert trail.verify(genuine).exit_code == 0


def test_the_writer_signs_checkpoints_every_n_events(tmp_path, master_key):  # noqa: ANN001
    trail = Trail(tmp_path, master_key, audit_checkpoint_every=4)
    try:
        trail.emit(13)
        rows = trail.rows()
        checkpoints = [r for r in rows if r.type == CHECKPOINT_TYPE]
        assert len(checkpoints) >= 3
        by_id = {r.id: r for r in rows}
        for row in checkpoints:
            decoded = trail.nixa.keys.verify(row.data["jws"])
            assert decoded.header["typ"] == CHECKPOINT_TYP and decoded.claims["iss"] == "http://testserver"
            covered = by_id[decoded.claims["event_id"]]
            assert covered.hash == decoded.claims["chain"] == row.prev_hash
            assert decoded.claims["count"] == len([r for r in rows if r.id <= covered.id])
    finally:
        trail.close()


def test_an_idle_writer_still_covers_the_last_events(tmp_path, master_key):  # noqa: ANN001
    trail = Trail(tmp_path, master_key, audit_checkpoint_seconds=1)
    try:
        trail.emit(2)
        # the last event (on a slow machine a checkpoint may already follow the first one)
        last = [r for r in trail.rows() if r.type != CHECKPOINT_TYPE][-1]
        deadline = time.monotonic() + 10
        while trail.rows()[-1].type != CHECKPOINT_TYPE and time.monotonic() < deadline:
            time.sleep(0.2)
        final = trail.rows()[-1]
        assert final.type == CHECKPOINT_TYPE and final.data["event_id"] >= last.id
    finally:
        trail.close()


def test_rows_of_an_older_version_still_verify_and_stay_tamper_evident(trail):  # noqa: ANN001
    assert trail.rows() == []
    with trail.nixa.db.session() as s:  # what NIXA wrote before the audit key existed
        prev = "0" * 64
        for i in range(3):
            row = AuditEvent(at=1_700_000_000.0 + i, type="login.succeeded", person_id=f"old{i}", client_id=None, ip=None,
                             data={"method": "local"}, prev_hash=prev, hash="")
            row.hash = legacy_chain_hash(prev, row)
            s.add(row)
            prev = row.hash
    trail.emit(3)
    result = trail.verify()
    assert result.exit_code == 0 and "3 of them unkeyed" in result.stdout
    assert trail.rows()[3].prev_hash == trail.rows()[2].hash  # the keyed chain continues the old one
    old = trail.rows()[1]
    edit(trail, old, method="forged")
    assert failed_at(trail.verify(), old.id)


def test_an_audit_key_change_keeps_old_rows_verifiable(trail):  # noqa: ANN001
    from idp.audit_chain import encode_key

    trail.emit(3)
    pinned = trail.cli("audit", "pin-key")
    assert pinned.exit_code == 0 and pinned.stdout.startswith("NIXA_AUDIT_KEY=")
    derived = pinned.stdout.strip().split("=", 1)[1]
    assert trail.cli("audit", "verify", NIXA_AUDIT_KEY=derived).exit_code == 0  # pinned: the same key, the same chain
    exported = [r for r in trail.rows() if r.type == "admin.changed" and "audit_key_exported" in r.data]
    assert exported and exported[0].data["actor"]["via"] == "cli"
    new_key = encode_key(secrets.token_bytes(32))
    refused = trail.cli("audit", "verify", NIXA_AUDIT_KEY=new_key)
    assert refused.exit_code == 1 and "does not hold" in refused.stderr
    assert trail.cli("audit", "verify", NIXA_AUDIT_KEY=new_key, NIXA_AUDIT_PREVIOUS_KEYS=derived).exit_code == 0
