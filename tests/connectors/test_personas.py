"""The persona list (connectors/personas.py) is the one source of the sandbox's synthetic
people: it covers every level and every refusal, the sandboxes are seeded from it (the staff
directory file agrees with it), docs/personas.md is generated from it, and `nixa registry
generate` tells how to sign in as the people it makes."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from connectors.personas import CERTIFICATES, LEVELS, PERSONAS, REGISTRY_RECORDS, STAFF, markdown
from connectors.population import registry_db

ROOT = Path(__file__).resolve().parents[2]


def test_docs_personas_md_is_generated_from_the_list() -> None:
    assert (ROOT / "docs" / "personas.md").read_text(encoding="utf-8") == markdown(), \
        "regenerate it: python -m connectors.personas > docs/personas.md"
    for p in PERSONAS:
        assert f'<a id="{p.key}"></a>' in markdown() and p.name in markdown()


def test_every_level_and_every_refusal_has_a_persona() -> None:
    assert len(PERSONAS) >= 20
    assert len({p.key for p in PERSONAS}) == len(PERSONAS)
    assert {p.level for p in PERSONAS if p.level} == set(LEVELS)
    assert {p.refusal for p in PERSONAS if p.refusal} >= {
        "deceased", "id_locked", "no_phone_on_record", "cert_revoked", "cert_expired", "cert_untrusted", "cert_wrong_usage",
        "account_disabled", "invalid_credentials"}
    assert {p.method for p in PERSONAS} == {"local", "registry", "certificate", "operator", "staff"}
    assert any(p.sim and p.proof and p.sim != p.proof.phone for p in PERSONAS)  # a SIM registered to someone else


def test_the_sandboxes_hold_what_the_personas_need(tmp_path) -> None:  # noqa: ANN001
    conn = registry_db.connect(tmp_path / "registry.db")
    with closing(conn):
        registry_db.ensure_schema(conn)
        registry_db.seed_demo(conn)
        for p in PERSONAS:
            if p.method == "registry" and p.key != "unknown-id":
                held = registry_db.find(conn, p.pin)
                assert held is not None and held.date_of_birth == p.date_of_birth and held.phone == p.phone_on_record, p.key
        assert registry_db.find(conn, next(p.pin for p in PERSONAS if p.key == "unknown-id")) is None
    labels = {c.label for c in CERTIFICATES}
    assert {p.certificate for p in PERSONAS if p.certificate} <= labels
    assert {p.proof.pin for p in PERSONAS if p.proof} <= {c.pin for c in REGISTRY_RECORDS}

    ldif = (ROOT / "connectors" / "ldap" / "staff.ldif").read_text(encoding="utf-8")
    for member in STAFF:
        assert re.search(rf"^#\s+{member.uid}\s+{re.escape(member.password)}\b", ldif, re.M), member.uid  # documented password
        entry = ldif.split(f"dn: uid={member.uid},")[1].split("\n\n")[0]
        assert ("pwdAccountLockedTime" in entry) == member.disabled, member.uid


def test_registry_generate_prints_how_to_sign_in_as_the_first_people(tmp_path) -> None:  # noqa: ANN001
    from admin.cli import app

    db = tmp_path / "registry.db"
    result = CliRunner().invoke(app, ["registry", "generate", "--db", str(db), "--count", "300"])
    assert result.exit_code == 0, result.output
    with closing(sqlite3.connect(db)) as conn:
        first = conn.execute("SELECT pin, full_name, date_of_birth, phone FROM citizens WHERE demo = 0 AND status = 'active' "
                             "AND phone IS NOT NULL ORDER BY pin LIMIT 3").fetchall()
    assert len(first) == 3
    for pin, name, born, phone in first:
        assert f"ID {pin}  name {name}  born {born}  phone on record {phone}" in result.output
    assert "SMS outbox" in result.output and "docs/personas.md" in result.output
