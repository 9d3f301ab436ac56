"""Engines and short transactions that behave the same on SQLite files and PostgreSQL.

SQLite: WAL, a busy timeout, and `BEGIN IMMEDIATE` for writes (a deferred transaction that
upgrades to a writer can fail with SQLITE_BUSY at once, whatever the timeout). PostgreSQL:
row locks (`SELECT ... FOR UPDATE`) and a retry on serialization failures. Both: a bounded
retry on transient lock errors, so that none reaches a caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, SQLModel

from lineage import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

T = TypeVar("T")

_TRANSIENT = ("database is locked", "database is busy", "could not serialize", "deadlock detected")


def normalise_url(url_or_path: str | Path) -> str:
    """Accept a SQLAlchemy URL or a filesystem path to a SQLite file."""
    text = str(url_or_path)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            return "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return f"sqlite:///{Path(text).resolve()}"


def make_engine(url: str) -> Engine:
    """Create the engine and the schema (idempotent)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=8, max_overflow=32
        )
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20)
    run_tx(engine, lambda s: SQLModel.metadata.create_all(s.connection()), write=True)
    run_tx(engine, add_columns, write=True)
    return engine


def add_columns(session: Session) -> None:
    """Add the columns of `tables.ADDED_COLUMNS` an older database lacks (one write transaction:
    on SQLite it serialises with any other process doing the same; PostgreSQL says IF NOT EXISTS)."""
    conn = session.connection()
    for table, column, ddl in tables.ADDED_COLUMNS:
        if column in {c["name"] for c in inspect(conn).get_columns(table)}:
            continue
        guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {guard}{column} {ddl}")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, (OperationalError, DBAPIError)):
        return False
    text = str(exc).lower()
    return any(t in text for t in _TRANSIENT)


def run_tx(engine: Engine, fn: Callable[[Session], T], *, write: bool, attempts: int = 60) -> T:
    """Run `fn` in one short transaction, retrying transient lock errors with jitter."""
    opts = {"sqlite_begin": "IMMEDIATE"} if write else {}
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(**opts)
                with Session(bind=conn, expire_on_commit=False) as session:
                    with conn.begin():
                        result = fn(session)
                        session.flush()
                    return result
        except (OperationalError, DBAPIError) as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.5, 0.005 * (2 ** min(attempt, 7))) * (0.5 + random.random()))
    raise AssertionError("unreachable")
