"""Connections and migrations of the registry database (SQLite file by default, PostgreSQL in production)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x65766170  # "evap": one migrator at a time across processes
#: Our own Alembic version table, so the registry can share a database with Dagster's storage (which
#: keeps its own ``alembic_version``).
VERSION_TABLE = "eval_platform_schema_version"


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the Dagster run processes write while the CLI reads; the busy timeout queues writers.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Registry:
    """Owns the engine and hands out sessions; records are returned detached (plain data)."""

    def __init__(self, url: str):
        self.url = url
        #: SQLite's single-writer queue (see below); None for servers that take concurrent writers
        self._write_lock: threading.Lock | None = None
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # SQLite has one writer at a time; writers of this process queue here instead of in SQLite's busy
            # handler, whose back-off sleeps (up to 100 ms each) made the API's tail latency
            self._write_lock = threading.Lock()
        else:
            # enough pooled connections for every API worker thread: an overflow connection is closed when
            # returned, and opening PostgreSQL connections per request cost more than the request itself
            pool_size = int(os.environ.get("EVAL_PLATFORM_DB_POOL_SIZE") or 16)
            # a bounded connect: an unreachable host (packets dropped, not refused) is an outage reported in
            # seconds (503, one CLI line), not a request that hangs until the client gives up
            connect_args = {"connect_timeout": int(os.environ.get("EVAL_PLATFORM_DB_CONNECT_TIMEOUT") or 10)} \
                if url.startswith(("postgresql", "postgres")) else {}
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                                        connect_args=connect_args)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Registry:
        registry = cls(url)
        registry.migrate()
        return registry

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (a no-op when it already is)."""
        config = _alembic_config()
        head = ScriptDirectory.from_config(config).get_current_head()
        if self.schema_revision() == head:
            return
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back entirely if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A unit of work that will write: as :meth:`session`, serialized within this process on SQLite
        (PostgreSQL writers run concurrently)."""
        with self._write_lock or nullcontext():
            with self.session() as session:
                yield session

    def dispose(self) -> None:
        self.engine.dispose()
