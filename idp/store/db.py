"""Engine, sessions and the schema gate: the app refuses to start on a schema it doesn't know."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# At least the request threadpool's size (anyio's default 40): otherwise connections made for
# the overflow are opened and thrown away under load.
POOL_SIZE = 40
CONNECT_TIMEOUT = 5  # seconds (libpq's connect_timeout: the whole connection set-up)
POOL_TIMEOUT = 10  # seconds a request waits for a free pooled connection


class SchemaMismatch(RuntimeError):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=POOL_SIZE, max_overflow=8)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # No pre-ping round trip per checkout: a dropped connection invalidates the pool on first
    # error, and connections are recycled before a server or proxy would time them out.
    # Bounded waits: a database behind a partition that drops packets (or a server that accepts
    # and never answers) fails a connection attempt after CONNECT_TIMEOUT seconds, a request
    # waiting for a pooled connection after POOL_TIMEOUT, and TCP keepalives find a dead
    # connection in about a minute; the request gets its 503 instead of hanging.
    connect_args = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT}
    if url.startswith("postgresql"):
        connect_args.update(keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
    return create_engine(url, pool_size=POOL_SIZE, max_overflow=8, pool_recycle=1800, pool_timeout=POOL_TIMEOUT,
                         connect_args=connect_args)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def check_schema(engine: Engine) -> None:
    """Refuse to serve unless the database is exactly at our head revision."""
    url = engine.url.render_as_string(hide_password=False)
    head = head_revision(url)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaMismatch(
            f"database schema is at {current or 'nothing'}, this NIXA knows {head}: run `nixa migrate`"
            if current is None or _known(url, current)
            else f"database schema {current} is unknown to this NIXA (head {head}); refusing to start"
        )


def _known(url: str, revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config(url)).get_revision(revision) is not None
    except Exception:
        return False


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
