"""A search as a live read model: what a dashboard or a comparison reads, kept current cheaply.

`LiveSearch(store, search_id).state()` returns a frozen `LiveState`: the search row, the narrow
columns of every finished trial as numpy arrays (exp id, status, specialist, score, finish
time), the unfinished trials, the specialists' sessions and spend, and the run's state from
its events. Its `version` is the lineage's change counter as this reader sees it: it moves
exactly when a refresh found something new, so anything derived from a state can be cached
under `(search, version)`.

Why it is cheap at 100,000 trials: a finished row is immutable (`lineage/base.py`), and so is an
ended session, so each is read once. A refresh reads only what may have changed, each an index
range: trials after the largest exp id seen, the unfinished trials seen last time (by id),
sessions likewise, and events after a cursor. With nothing new that is a handful of indexed
queries that return nothing. The first refresh pages through the search once.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection

from lineage import _live_sql as q
from lineage.models import Search, TrialStatus
from lineage.sql import SqlLineageStore

FINISHED = frozenset(s.value for s in TrialStatus if s.is_finished())


@dataclass(frozen=True)
class Columns:
    """Finished trials (baseline excluded), in the order this reader saw them finish."""

    exp: np.ndarray  # int64
    status: np.ndarray  # int16: index into LiveState.statuses
    specialist: np.ndarray  # int16: index into LiveState.specialists
    score: np.ndarray  # float64, NaN where the trial has no score
    finished: np.ndarray  # float64 seconds since the epoch, NaN where unknown

    def __len__(self) -> int:
        return int(self.exp.shape[0])


@dataclass(frozen=True)
class Pending:
    """An unfinished trial (queued, running, or any other unfinished status)."""

    exp_id: int
    specialist: str
    status: str
    created: float | None
    started: float | None
    worker: str | None
    attempts: int
    parent_exp: int | None


@dataclass(frozen=True)
class OpenSession:
    id: int
    specialist: str
    model: str
    started: float | None
    cost_usd: float
    tool_calls: int


@dataclass(frozen=True)
class SessionTally:
    """A specialist's ended sessions, added up."""

    sessions: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0


@dataclass(frozen=True)
class RunState:
    """The latest run of the search, as its events tell it (see `client.display.RunLog`)."""

    started: bool = False
    stop_reason: str = ""
    ended: bool = False
    paused: dict[str, str] = field(default_factory=dict)
    last_event: float | None = None
    activity: dict[str, tuple[str, int | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveState:
    version: int
    epoch: str  # changes when the reader starts over, so cursors into `columns` reset
    search: Search
    statuses: tuple[str, ...]
    specialists: tuple[str, ...]
    columns: Columns
    pending: tuple[Pending, ...]
    sessions: dict[str, SessionTally]
    open_sessions: tuple[OpenSession, ...]
    run: RunState
    read_at: float

    def spend_usd(self) -> float:
        return sum(t.cost_usd for t in self.sessions.values()) + sum(s.cost_usd for s in self.open_sessions)

    def code(self, status: str) -> int:
        """The code of `status` in `columns.status` (-1 if no finished trial has it)."""
        return self.statuses.index(status) if status in self.statuses else -1


_EMPTY = Columns(np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, np.int16),
                 np.zeros(0, np.float64), np.zeros(0, np.float64))


class LiveSearch:
    """The incremental reader of one search (thread-safe; one per process and search).

    `min_interval`: `state()` reuses the last refresh younger than this many seconds, so many
    viewers polling at once cost one refresh.
    """

    def __init__(self, store: SqlLineageStore, search_id: str, *, min_interval: float = 0.5,
                 page: int = 10_000) -> None:
        self.store, self.search_id = store, search_id
        self.min_interval, self.page = min_interval, page
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._version = 0
        self._statuses = _Codes(s.value for s in TrialStatus)
        self._specialists = _Codes()
        self._chunks: list[Columns] = []
        self._columns = _EMPTY
        self._max_exp = 0
        self._pending: dict[int, Pending] = {}
        self._sessions = _SessionReader()
        self._events = _EventReader()
        self._state: LiveState | None = None

    def state(self) -> LiveState:
        """The current state, refreshed unless the last refresh is younger than `min_interval`."""
        with self._lock:
            if self._state is not None and time.monotonic() - self._state.read_at < self.min_interval:
                return self._state
            return self._refresh()

    def _refresh(self) -> LiveState:
        search, changed = q.read(self.store, self._read)
        if changed or self._state is None:
            self._version += 1
            if self._chunks:
                self._columns = _concat([self._columns, *self._chunks])
                self._chunks = []
        self._state = LiveState(
            version=self._version, epoch=self._epoch, search=search, statuses=tuple(self._statuses.names),
            specialists=tuple(self._specialists.names), columns=self._columns,
            pending=tuple(self._pending[k] for k in sorted(self._pending)),
            sessions=dict(self._sessions.tally), open_sessions=tuple(self._sessions.open.values()),
            run=self._events.state(), read_at=time.monotonic(),
        )
        return self._state

    def _read(self, conn: Connection) -> tuple[Search, bool]:
        """Everything new since the last refresh, in one read transaction (one snapshot)."""
        search = q.search_row(conn, self.search_id)
        changed = self._state is None or search != self._state.search
        changed = self._read_trials(conn) or changed
        changed = self._sessions.read(conn, self.search_id, self.page) or changed
        changed = self._events.read(conn, self.search_id, self.page) or changed
        return search, changed

    def _read_trials(self, conn: Connection) -> bool:
        rows: list[tuple[Any, ...]] = []
        if self._pending:
            rows += q.trials_by_exp(conn, self.search_id, list(self._pending))
        while True:
            page = q.trials_after(conn, self.search_id, self._max_exp, self.page)
            rows += page
            if page:
                self._max_exp = max(self._max_exp, int(page[-1][0]))
            if len(page) < self.page:
                break
        changed = False
        finished: list[tuple[Any, ...]] = []
        for row in rows:
            changed = self._take(row, finished) or changed
        if finished:
            self._chunks.append(self._encode(finished))
        return changed

    def _take(self, row: tuple[Any, ...], finished: list[tuple[Any, ...]]) -> bool:
        """File one read row as finished or pending; True if it is news."""
        exp, spec, status, _score, created, started, _fin, worker, attempts, parent = row
        if status in FINISHED:
            self._pending.pop(int(exp), None)
            finished.append(row)
            return True
        p = Pending(int(exp), spec, status, created, started, worker, int(attempts or 0), parent)
        news = self._pending.get(p.exp_id) != p
        self._pending[p.exp_id] = p
        return news

    def _encode(self, rows: list[tuple[Any, ...]]) -> Columns:
        return Columns(
            exp=np.fromiter((r[0] for r in rows), np.int64, len(rows)),
            status=np.fromiter((self._statuses.code(r[2]) for r in rows), np.int16, len(rows)),
            specialist=np.fromiter((self._specialists.code(r[1]) for r in rows), np.int16, len(rows)),
            score=np.fromiter((np.nan if r[3] is None else r[3] for r in rows), np.float64, len(rows)),
            finished=np.fromiter((np.nan if r[6] is None else r[6] for r in rows), np.float64, len(rows)),
        )


class _Codes:
    """Small integer codes for names (statuses, specialists), assigned in order of first sight."""

    def __init__(self, names: Any = ()) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        for name in names:
            self.code(name)

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is None:
            found = self._codes[name] = len(self.names)
            self.names.append(name)
        return found


def _concat(parts: list[Columns]) -> Columns:
    return Columns(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("exp", "status", "specialist", "score", "finished")))


class _SessionReader:
    """Ended sessions are added up once; open ones are re-read by id until they end."""

    def __init__(self) -> None:
        self.max_id = 0
        self.open: dict[int, OpenSession] = {}
        self.tally: dict[str, SessionTally] = {}

    def read(self, conn: Connection, search_id: str, page: int) -> bool:
        rows = q.sessions_by_id(conn, list(self.open)) if self.open else []
        while True:
            batch = q.sessions_after(conn, search_id, self.max_id, page)
            rows += batch
            if batch:
                self.max_id = max(self.max_id, int(batch[-1][0]))
            if len(batch) < page:
                break
        changed = False
        for sid, spec, model, started, ended, cost, calls, _exp in rows:
            if ended is not None:
                self.open.pop(sid, None)
                t = self.tally.get(spec, SessionTally())
                self.tally[spec] = SessionTally(t.sessions + 1, t.cost_usd + float(cost or 0), t.tool_calls + int(calls or 0))
                changed = True
                continue
            s = OpenSession(int(sid), spec, model, started, float(cost or 0), int(calls or 0))
            changed = changed or self.open.get(s.id) != s
            self.open[s.id] = s
        return changed


class _EventReader:
    """The run's state and each specialist's last event, from events after a cursor."""

    def __init__(self) -> None:
        self.cursor = 0
        self.run = RunState()
        self.activity: dict[str, tuple[str, int | None, float | None]] = {}

    def read(self, conn: Connection, search_id: str, page: int) -> bool:
        start = self.cursor
        while True:
            batch = q.events_after(conn, search_id, self.cursor, page)
            for row in batch:
                self._apply(*row)
            if len(batch) < page:
                return self.cursor != start

    def _apply(self, eid: int, ts: Any, kind: str, spec: str | None, exp: int | None, payload: Any) -> None:
        self.cursor = eid
        r, when, why = self.run, ts, str((payload or {}).get("reason", ""))
        if kind == "run_start":
            r = RunState(started=True)
        elif kind == "stop_requested":
            r = RunState(r.started, why, r.ended, r.paused)
        elif kind == "specialist_paused" and spec:
            r = RunState(r.started, r.stop_reason, r.ended, {**r.paused, spec: why})
        elif kind == "run_end":
            r = RunState(r.started, r.stop_reason, True, r.paused)
        self.run = RunState(r.started, r.stop_reason, r.ended, r.paused, last_event=when)
        if spec:
            self.activity[spec] = (kind, exp, when)

    def state(self) -> RunState:
        r = self.run
        return RunState(r.started, r.stop_reason, r.ended, dict(r.paused), r.last_event, dict(self.activity))
