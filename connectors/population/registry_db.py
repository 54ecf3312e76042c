"""The registry sandbox's SQLite file: schema, demo seeding, lookups.

The sandbox stands in for an external national system, so it keeps its own file with the
standard-library sqlite3 module; NIXA's own database (SQLAlchemy) has nothing to do with it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from connectors.population.citizen import Citizen
from connectors.population.demo_data import DEMO_CITIZENS

SCHEMA = """
CREATE TABLE IF NOT EXISTS citizens (
    pin TEXT PRIMARY KEY CHECK (length(pin) = 12),
    family_name TEXT NOT NULL,
    middle_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    full_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    residence TEXT NOT NULL,
    residence_province TEXT NOT NULL,
    phone TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'deceased', 'locked')),
    demo INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = (
    "pin, family_name, middle_name, given_name, full_name, date_of_birth, sex, "
    "residence, residence_province, phone, status, demo"
)
INSERT = f"INSERT INTO citizens ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT = f"INSERT OR REPLACE INTO citizens ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def connect(path: str | Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def as_row(citizen: Citizen, demo: bool = False) -> tuple:
    return (
        citizen.pin,
        citizen.family_name,
        citizen.middle_name,
        citizen.given_name,
        citizen.full_name,
        citizen.date_of_birth,
        citizen.sex,
        citizen.residence,
        citizen.residence_province,
        citizen.phone,
        citizen.status,
        1 if demo else 0,
    )


def seed_demo(conn: sqlite3.Connection, citizens: Iterable[Citizen] = DEMO_CITIZENS) -> None:
    """(Re)write the well-known demo records, whatever the file held before."""
    with conn:
        conn.executemany(UPSERT, [as_row(c, demo=True) for c in citizens])


def find(conn: sqlite3.Connection, pin: str) -> Citizen | None:
    row = conn.execute(
        "SELECT pin, family_name, middle_name, given_name, date_of_birth, sex, residence, "
        "residence_province, phone, status FROM citizens WHERE pin = ?",
        (pin,),
    ).fetchone()
    return Citizen(*row) if row else None


def generated_sample(conn: sqlite3.Connection, limit: int = 3) -> list[Citizen]:
    """The first generated (non-demo) citizens that can sign in through the registry + SMS code:
    active, with a phone on record, in PIN order (the same ones for a seed and count)."""
    rows = conn.execute(
        "SELECT pin, family_name, middle_name, given_name, date_of_birth, sex, residence, residence_province, phone, status "
        "FROM citizens WHERE demo = 0 AND status = 'active' AND phone IS NOT NULL AND phone != '' ORDER BY pin LIMIT ?",
        (limit,),
    ).fetchall()
    return [Citizen(*row) for row in rows]


def set_status(conn: sqlite3.Connection, pin: str, status: str) -> bool:
    with conn:
        return conn.execute("UPDATE citizens SET status = ? WHERE pin = ?", (status, pin)).rowcount == 1


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM citizens").fetchone()[0]
