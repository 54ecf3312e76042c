"""The synthetic registry: structure of every record, uniqueness, determinism, demo records."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from connectors.population import registry_db
from connectors.population.cccd import PROVINCES, parse_pin
from connectors.population.citizen import STATUSES
from connectors.population.cli import app as registry_cli
from connectors.population.demo_data import DEMO_CITIZEN, DEMO_CITIZENS, DEMO_PINS
from connectors.population.generate import generate
from connectors.population.synthetic import FAMILY_NAMES
from connectors.telecom.phone import normalize_msisdn

COUNT = 2000
VIETNAMESE_LETTERS = re.compile(r"[ăâđêôơưáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ]", re.I)


def rows(db: Path) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(f"SELECT {registry_db.COLUMNS} FROM citizens ORDER BY pin").fetchall()


def digest(db: Path) -> str:
    return hashlib.sha256(repr(rows(db)).encode()).hexdigest()


def test_every_generated_record_is_consistent(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    report = generate(db, COUNT, seed=1)
    assert report.count == COUNT and not report.skipped
    records = rows(db)
    generated = [r for r in records if r[-1] == 0]
    assert len(generated) == COUNT
    assert len(records) == COUNT + len(DEMO_CITIZENS)
    assert len({r[0] for r in records}) == len(records)  # PINs unique

    for pin, family, middle, given, full, born, sex, residence, province, phone, status, _ in generated:
        assert re.fullmatch(r"\d{12}", pin) and pin not in DEMO_PINS
        parts = parse_pin(pin)
        assert parts.province_code in PROVINCES
        birth = dt.date.fromisoformat(born)
        assert parts.birth_year == birth.year  # century digit + 2-digit year
        assert parts.sex == sex  # even digit male, odd female
        assert family in FAMILY_NAMES and middle and given
        assert full == f"{family} {middle} {given}"
        assert residence.endswith(province) and province in PROVINCES.values()
        assert phone is None or normalize_msisdn(phone).startswith("+84")
        assert status in STATUSES
        assert dt.date(1925, 1, 1) <= birth <= dt.date(2024, 12, 31)

    # Plausible, not uniform: Vietnamese letters, mostly active, both sexes, many provinces.
    assert sum(1 for r in generated if VIETNAMESE_LETTERS.search(r[4])) > COUNT * 0.9
    assert sum(1 for r in generated if r[1] == "Nguyễn") > COUNT * 0.25
    assert sum(1 for r in generated if r[10] == "active") > COUNT * 0.9
    assert {r[6] for r in generated} == {"male", "female"}
    assert len({r[0][:3] for r in generated}) > 40
    assert {r[0][3] for r in generated} == {"0", "1", "2", "3"}


def test_demo_records_are_always_there(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    generate(db, 100, seed=1)
    with closing(sqlite3.connect(db)) as conn:
        for citizen in DEMO_CITIZENS:
            assert registry_db.find(conn, citizen.pin) == citizen
    assert DEMO_CITIZEN.full_name == "Nguyễn Văn An"
    assert parse_pin(DEMO_CITIZEN.pin).birth_year == 1990


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    generate(a, 500, seed=42)
    generate(b, 500, seed=42)
    generate(c, 500, seed=43)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_generating_again_is_skipped_unless_forced_or_changed(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    generate(db, 300, seed=5)
    before = digest(db)
    assert generate(db, 300, seed=5).skipped
    assert digest(db) == before
    assert not generate(db, 300, seed=5, force=True).skipped
    assert digest(db) == before
    generate(db, 200, seed=5)
    assert len(rows(db)) == 200 + len(DEMO_CITIZENS)


def test_cli_generate(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(registry_cli, ["generate", "--db", str(db), "--count", "250", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "250 citizens" in result.output
    assert len(rows(db)) == 250 + len(DEMO_CITIZENS)
    demo = CliRunner().invoke(registry_cli, ["demo"])
    assert demo.exit_code == 0 and "Nguyễn Văn An" in demo.output


def test_every_synthetic_mobile_prefix_is_a_valid_mobile_range() -> None:
    # normalize_msisdn follows libphonenumber's metadata; the generator must stay inside it.
    from connectors.population.synthetic import MOBILE_PREFIXES

    for prefix in MOBILE_PREFIXES:
        rest = 10 - len(prefix)
        for sample in (0, 10**rest // 3, 10**rest // 2, 10**rest - 1):
            number = f"{prefix}{sample:0{rest}d}"
            assert normalize_msisdn(number) == "+84" + number[1:], number
    for citizen in DEMO_CITIZENS:
        assert citizen.phone is None or normalize_msisdn(citizen.phone).startswith("+84")
