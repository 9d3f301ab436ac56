"""Bounded, read-only queries behind `lineage.live.LiveSearch` and the dashboard's pages.

Every query here reads one index range: rows after a keyset cursor (`exp_id > n`, `id > n`),
rows by id (chunks of `IDS_CHUNK`), one node's children, or a capped top list. None loads a
whole search, and none writes. Rows come back as tuples or dicts of the narrow columns a chart
or table needs, never the wide text and JSON columns (the trial page reads its one full row
through the store). Statements are built once per dialect with bound parameters: building
them costs more than running them on an index.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, Float, bindparam, case, cast, extract, func, select, type_coerce

from lineage._convert import search_model
from lineage._engine import run_tx
from lineage._sql_reads import _CHAIN
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


def epoch_of(column: Any, dialect: str) -> Any:
    """`column` (a UTC timestamp) as seconds since the epoch, computed by the database: parsing
    100,000 timestamps in Python costs more than the whole query."""
    if dialect == "sqlite":
        return cast((func.julianday(column) - 2440587.5) * 86400.0, Float)
    return cast(extract("epoch", column), Float)


@functools.cache
def _q(dialect: str) -> SimpleNamespace:
    """Every statement of this module for one dialect, with bound parameters (built once)."""
    s, ids, after, limit = bindparam("s"), bindparam("ids", expanding=True), bindparam("after"), bindparam("limit")
    trial = (_T.exp_id, _T.specialist, _T.status, _T.score, epoch_of(_T.created_at, dialect),
             epoch_of(_T.started_at, dialect), epoch_of(_T.finished_at, dialect), _T.worker, _T.attempts,
             _T.parent_exp)
    session = (_S.id, _S.specialist, _S.model, epoch_of(_S.started_at, dialect), _S.ended_at, _S.cost_usd,
               _S.tool_calls, _S.exp_id)
    payload = type_coerce(case((_E.kind.in_(RUN_KINDS), _E.payload), else_=None), JSON)
    panel = (_T.exp_id, _T.specialist, _T.status, _T.score, _T.delta, _T.hypothesis, _T.parent_exp)
    kept = (_T.search_id == s, _T.status.in_(("keep", "baseline")), _T.score.is_not(None))
    return SimpleNamespace(
        search=select(SearchRow).where(SearchRow.id == s),
        trials_after=select(*trial).where(_T.search_id == s, _T.exp_id > after).order_by(_T.exp_id).limit(limit),
        trials_by_exp=select(*trial).where(_T.search_id == s, _T.exp_id.in_(ids)),
        sessions_after=select(*session).where(_S.search_id == s, _S.id > after).order_by(_S.id).limit(limit),
        sessions_by_id=select(*session).where(_S.id.in_(ids)),
        events_after=select(_E.id, epoch_of(_E.ts, dialect), _E.kind, _E.specialist, _E.exp_id, payload)
        .where(_E.search_id == s, _E.id > after).order_by(_E.id).limit(limit),
        trial_events=select(_E.ts, _E.kind, _E.specialist, _E.payload)
        .where(_E.search_id == s, _E.exp_id == bindparam("exp")).order_by(_E.id).limit(limit),
        children=select(_T.exp_id, _T.specialist, _T.status, _T.score, _T.hypothesis)
        .where(_T.search_id == s, _T.parent_exp == bindparam("parent"), _T.exp_id > 0)
        .order_by(_T.exp_id).offset(bindparam("offset")).limit(limit),
        child_counts=select(_T.parent_exp, func.count()).where(_T.search_id == s, _T.parent_exp.in_(ids), _T.exp_id > 0)
        .group_by(_T.parent_exp),
        recent=select(_T.exp_id, _T.specialist, _T.status, _T.score, _T.delta, _T.hypothesis, _T.failure, _T.decision,
                      epoch_of(_T.finished_at, dialect).label("finished"))
        .where(_T.search_id == s, _T.exp_id > 0).order_by(_T.exp_id.desc()).limit(limit),
        best_low=select(*panel).where(*kept).order_by(_T.score.asc(), _T.exp_id).limit(limit),
        best_high=select(*panel).where(*kept).order_by(_T.score.desc(), _T.exp_id).limit(limit),
        panel=select(*panel).where(_T.search_id == s, _T.exp_id.in_(ids)),
        baseline_time=select(epoch_of(_T.finished_at, dialect), epoch_of(_T.created_at, dialect))
        .where(_T.search_id == s, _T.exp_id == 0),
    )


def read(store: SqlLineageStore, fn: Callable[[Connection], T]) -> T:
    """Run `fn(connection)` in one read transaction: every query in it sees one snapshot."""
    return run_tx(store.engine, lambda s: fn(s.connection()), write=False)


def _rows(conn: Connection, name: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(getattr(_q(conn.dialect.name), name), params)]


def _dicts(conn: Connection, name: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(m) for m in conn.execute(getattr(_q(conn.dialect.name), name), params).mappings()]


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), IDS_CHUNK):
        yield wanted[i:i + IDS_CHUNK]


def search_row(conn: Connection, search_id: str) -> Search:
    row = conn.execute(_q(conn.dialect.name).search, {"s": search_id}).first()
    if row is None:
        raise SearchNotFoundError(f"no search {search_id!r} in this lineage")
    return search_model(SearchRow.model_validate(dict(row._mapping)))


def trials_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Trials with `exp_id > after` (the baseline row 0 excluded), in exp order, at most `limit`:
    exp, specialist, status, score, created, started, finished (epochs), worker, attempts, parent."""
    return _rows(conn, "trials_after", s=search_id, after=max(after, 0), limit=limit)


def trials_by_exp(conn: Connection, search_id: str, exp_ids: Iterable[int]) -> list[tuple[Any, ...]]:
    """The same narrow rows for these trials, read in chunks of `IDS_CHUNK`."""
    return [r for chunk in _chunks(exp_ids) for r in _rows(conn, "trials_by_exp", s=search_id, ids=chunk)]


def sessions_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Specialist sessions with `id > after`, in id order, at most `limit`."""
    return _rows(conn, "sessions_after", s=search_id, after=after, limit=limit)


def sessions_by_id(conn: Connection, ids: Iterable[int]) -> list[tuple[Any, ...]]:
    return [r for chunk in _chunks(ids) for r in _rows(conn, "sessions_by_id", ids=chunk)]


def events_after(conn: Connection, search_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """(id, ts epoch, kind, specialist, exp_id, payload) after `after`; payload only for `RUN_KINDS`."""
    return _rows(conn, "events_after", s=search_id, after=after, limit=limit)


def trial_events(conn: Connection, search_id: str, exp_id: int, limit: int = 50) -> list[tuple[Any, ...]]:
    """(ts, kind, specialist, payload) of one trial's events, oldest first (a scan of the search's
    events bounded by `limit` matches; the trial page only)."""
    return _rows(conn, "trial_events", s=search_id, exp=exp_id, limit=limit)


def children(conn: Connection, search_id: str, parent: int, offset: int, limit: int) -> list[dict[str, Any]]:
    """One page of a node's children in exp order: exp, specialist, status, score, hypothesis."""
    return _dicts(conn, "children", s=search_id, parent=parent, offset=max(offset, 0), limit=limit)


def child_counts(conn: Connection, search_id: str, parents: Sequence[int]) -> dict[int, int]:
    """{parent exp: number of children} for these nodes (one indexed GROUP BY per chunk)."""
    return {int(p): int(n) for chunk in _chunks(parents) for p, n in _rows(conn, "child_counts", s=search_id, ids=chunk)}


def recent(conn: Connection, search_id: str, limit: int) -> list[dict[str, Any]]:
    """The newest trials (baseline excluded): exp, specialist, status, score, delta, hypothesis,
    failure, decision, finished (epoch)."""
    return _dicts(conn, "recent", s=search_id, limit=limit)


def leaderboard(conn: Connection, search_id: str, lower_is_better: bool, limit: int) -> list[dict[str, Any]]:
    """Kept trials and the baseline, best first (narrow columns; as `SqlLineageStore.leaderboard`)."""
    return _dicts(conn, "best_low" if lower_is_better else "best_high", s=search_id, limit=limit)


def ancestry(conn: Connection, search_id: str, exp_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Root -> `exp_id` along parent_exp (one recursive query, cycles cut), narrow columns."""
    chain: list[int] = []
    for (e,) in conn.execute(_CHAIN, {"s": search_id, "e": exp_id, "limit": limit}):
        if e in chain:
            break
        chain.append(int(e))
    rows = {r["exp_id"]: r for r in _dicts(conn, "panel", s=search_id, ids=chain)}
    return [rows[e] for e in reversed(chain) if e in rows]


def baseline_time(conn: Connection, search_id: str) -> float | None:
    """When the baseline row was measured (its finish, else its creation), as an epoch."""
    row = conn.execute(_q(conn.dialect.name).baseline_time, {"s": search_id}).first()
    return None if row is None else (row[0] if row[0] is not None else row[1])
