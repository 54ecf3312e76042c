"""A database of its own for tests that change the master key: the session database's master
key must stay what every other test was given."""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import DB_URL


def at_once(*calls: Callable[[], object], timeout: float = 60) -> list[object]:
    """Run the calls in threads released together (two workers at the same moment); each one's
    result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def go(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@pytest.fixture()
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """A new, migrated database on the run's backend (a new PostgreSQL database in the scale-out run)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from idp.store.db import migrate

    if not DB_URL:
        url = f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}"
        migrate(url)
        yield url
        return
    name = f"nixa_{uuid.uuid4().hex[:12]}"
    admin = create_engine(DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(DB_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
