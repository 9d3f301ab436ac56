"""Bounded, read-only queries behind `lineage.live.LiveSearch` and the dashboard's pages.

Every query here reads one index range: rows after a keyset cursor (`exp_id > n`, `id > n`),
rows by id (chunks of `IDS_CHUNK`), or one node's children. None loads a whole search, and none
writes. Rows come back as plain tuples or dicts of the narrow columns a chart or table needs,
never the wide text and JSON columns (the trial page reads one full row through the store).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import JSON, Connection, Float, case, cast, extract, func, select, type_coerce

from lineage._convert import search_model
from lineage._engine import run_tx
from lineage.exceptions import SearchNotFoundError
from lineage.models import Search
from lineage.sql import SqlLineageStore
from lineage.tables import EventRow, SearchRow, SessionRow, TrialRow

T = TypeVar("T")

IDS_CHUNK = 500

_T = TrialRow.__table__.c
_S = SessionRow.__table__.c
_E = EventRow.__table__.c
# Events whose payload a reader needs (the run's state); other payloads are not read.
RUN_KINDS = ("run_start", "stop_requested", "run_end", "specialist_paused")


def epoch(ts: datetime | None) -> float | None:
    """Seconds since the epoch; naive datetimes (SQLite) are UTC."""
    if ts is None:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def epoch_of(column: Any, dialect: str) -> Any:
    """`column` (a UTC timestamp) as seconds since the epoch, computed by the database: parsing
    100,000 timestamps in Python costs more than the whole query."""
    if dialect == "sqlite":
        return cast((func.julianday(column) - 2440587.5) * 86400.0, Float)
    return cast(extract("epoch", column), Float)


def trial_columns(conn: Connection) -> tuple[Any, ...]:
    """Trial columns a chart, a count or the in-flight table needs (no text, no JSON); times as epochs."""
    d = conn.dialect.name
    return (_T.exp_id, _T.specialist, _T.status, _T.score, epoch_of(_T.created_at, d),
            epoch_of(_T.started_at, d), epoch_of(_T.finished_at, d), _T.worker, _T.attempts,
            _T.parent_exp)


def session_columns(conn: Connection) -> tuple[Any, ...]:
    return (_S.id, _S.specialist, _S.model, epoch_of(_S.started_at, conn.dialect.name), _S.ended_at, _S.cost_usd,
            _S.tool_calls, _S.exp_id)


def read(store: SqlLineageStore, fn: Callable[[Connection], T]) -> T:
    """Run `fn(connection)` in one read transaction: every query in it sees one snapshot."""
    return run_tx(store.engine, lambda s: fn(s.connection()), write=False)


def search_row(conn: Connection, search_id: str) -> Search:
    row = conn.execute(select(SearchRow).where(SearchRow.id == search_id)).first()
    if row is None:
        raise SearchNotFoundError(f"no search {search_id!r} in this lineage")
    return search_model(SearchRow.model_validate(dict(row._mapping)))


def _rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(stmt)]


def trials_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Trials with `exp_id > after` (the baseline row 0 excluded), in exp order, at most `limit`."""
    stmt = (select(*trial_columns(conn)).where(_T.search_id == search_id, _T.exp_id > max(after, 0))
            .order_by(_T.exp_id).limit(limit))
    return _rows(conn, stmt)


def trials_by_exp(conn: Connection, search_id: str, exp_ids: Iterable[int]) -> list[tuple[Any, ...]]:
    """The narrow rows of these trials, read in chunks of `IDS_CHUNK`."""
    ids = sorted(set(exp_ids))
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(ids), IDS_CHUNK):
        stmt = select(*trial_columns(conn)).where(_T.search_id == search_id, _T.exp_id.in_(ids[i:i + IDS_CHUNK]))
        out.extend(_rows(conn, stmt))
    return out


def sessions_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Specialist sessions with `id > after`, in id order, at most `limit`."""
    stmt = (select(*session_columns(conn)).where(_S.search_id == search_id, _S.id > after)
            .order_by(_S.id).limit(limit))
    return _rows(conn, stmt)


def sessions_by_id(conn: Connection, ids: Iterable[int]) -> list[tuple[Any, ...]]:
    wanted = sorted(set(ids))
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(wanted), IDS_CHUNK):
        out.extend(_rows(conn, select(*session_columns(conn)).where(_S.id.in_(wanted[i:i + IDS_CHUNK]))))
    return out


def events_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """(id, ts, kind, specialist, exp_id, payload) after `after`; payload only for `RUN_KINDS`."""
    payload = type_coerce(case((_E.kind.in_(RUN_KINDS), _E.payload), else_=None), JSON)
    stmt = (select(_E.id, epoch_of(_E.ts, conn.dialect.name), _E.kind, _E.specialist, _E.exp_id, payload)
            .where(_E.search_id == search_id, _E.id > after).order_by(_E.id).limit(limit))
    return _rows(conn, stmt)


def trial_events(conn: Connection, search_id: str, exp_id: int, limit: int = 50) -> list[tuple[Any, ...]]:
    """(ts, kind, specialist, payload) of one trial's events, oldest first (a search-wide scan
    bounded by `limit` matches; used by the trial page only)."""
    stmt = (select(_E.ts, _E.kind, _E.specialist, _E.payload)
            .where(_E.search_id == search_id, _E.exp_id == exp_id).order_by(_E.id).limit(limit))
    return _rows(conn, stmt)


def children(conn: Connection, search_id: str, parent: int, offset: int, limit: int) -> list[dict[str, Any]]:
    """One page of a node's children in exp order: exp, specialist, status, score, hypothesis."""
    stmt = (select(_T.exp_id, _T.specialist, _T.status, _T.score, _T.hypothesis)
            .where(_T.search_id == search_id, _T.parent_exp == parent, _T.exp_id > 0)
            .order_by(_T.exp_id).offset(max(offset, 0)).limit(limit))
    return [dict(m) for m in conn.execute(stmt).mappings()]


def child_counts(conn: Connection, search_id: str, parents: Sequence[int]) -> dict[int, int]:
    """{parent exp: number of children} for these nodes (one indexed GROUP BY per chunk)."""
    out: dict[int, int] = {}
    ids = sorted(set(parents))
    for i in range(0, len(ids), IDS_CHUNK):
        stmt = (select(_T.parent_exp, func.count()).where(
            _T.search_id == search_id, _T.parent_exp.in_(ids[i:i + IDS_CHUNK]), _T.exp_id > 0)
            .group_by(_T.parent_exp))
        out.update({int(p): int(n) for p, n in _rows(conn, stmt)})
    return out


def recent(conn: Connection, search_id: str, limit: int) -> list[dict[str, Any]]:
    """The newest trials (baseline excluded): exp, specialist, status, score, delta, hypothesis, failure."""
    stmt = (select(_T.exp_id, _T.specialist, _T.status, _T.score, _T.delta, _T.hypothesis, _T.failure,
                   _T.decision, epoch_of(_T.finished_at, conn.dialect.name).label("finished"))
            .where(_T.search_id == search_id, _T.exp_id > 0).order_by(_T.exp_id.desc()).limit(limit))
    return [dict(m) for m in conn.execute(stmt).mappings()]
