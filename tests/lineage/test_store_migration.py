"""A database made before a column existed gains it when a store opens it (SQLite file, PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from lineage._engine import normalise_url
from lineage.models import Outcome, SearchConfig, TrialStatus
from lineage.sql import SqlLineageStore
from lineage.tables import ADDED_COLUMNS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite-file":
        return normalise_url(tmp_path / "lineage.db")
    return normalise_url(request.getfixturevalue("pg_url"))


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns(table)}
    finally:
        engine.dispose()


def _make_old_database(url: str) -> None:
    """A search with one finished trial, then the added columns dropped by raw SQL: the database
    as a release before them left it."""
    store = SqlLineageStore(url)
    store.create_search("s", SearchConfig(task="toy"))
    exp = store.create_trial("s", specialist="opt").exp_id
    store.claim_trial("s", "w", exp_id=exp)
    store.finish_trial("s", exp, Outcome(status="crash", failure="old"))
    store.close()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table, column, _ddl in ADDED_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    finally:
        engine.dispose()


def test_an_older_database_gains_the_log_tail_column_on_open(url: str) -> None:
    _make_old_database(url)
    assert "log_tail" not in _columns(url, "trial")
    store = SqlLineageStore(url)
    try:
        assert "log_tail" in _columns(url, "trial")
        old = store.get_trial("s", 1)
        assert (old.status, old.failure, old.log_tail) == (TrialStatus.CRASH, "old", "")
        exp = store.create_trial("s", specialist="opt").exp_id
        store.claim_trial("s", "w", exp_id=exp)
        assert store.finish_trial("s", exp, Outcome(status="crash", log_tail="boom")).log_tail == "boom"
    finally:
        store.close()
    again = SqlLineageStore(url)  # the column exists now: opening again changes nothing
    try:
        assert [t.log_tail for t in again.list_trials("s")] == ["", "boom"]
    finally:
        again.close()


def test_an_older_database_gains_the_snapshot_blob_table_on_open(url: str) -> None:
    _make_old_database(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE snapshot_blob")
        with engine.connect() as conn:
            assert "snapshot_blob" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
    store = SqlLineageStore(url)
    try:
        assert {"blob", "size", "data"} <= _columns(url, "snapshot_blob")
        assert store.get_trial("s", 1).failure == "old"
    finally:
        store.close()
