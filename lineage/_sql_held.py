"""Rows a worker holds (running trials, claimed candidates): heartbeats and reconciliation.

A worker stamps each row it holds every `HEARTBEAT_S` (`heartbeat`), with the database's clock
(an instant), so hosts whose clocks or session time zones differ still agree on how old a stamp
is. `reconcile` frees the rows of workers that are gone: one `is_alive` says is dead (a
process on this host that ended), or one whose stamp is older than `stale_s` (`STALE_AFTER_S`:
a worker on another host that died, lost its network or froze). A running row goes back to
the queue by the attempts rule (`max_attempts`), a candidate back to the candidates; each move
re-reads the row under a lock and happens only if nobody moved or stamped it meanwhile, so a
row is freed once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, update
from sqlmodel import Session, col, select

from lineage._convert import trial_model as _trial
from lineage.models import MAX_ATTEMPTS, STALE_AFTER_S, Trial, TrialStatus
from lineage.tables import TrialRow, utcnow

HELD = (TrialStatus.RUNNING.value, TrialStatus.CONFIRMING.value)


def requeue(row: TrialRow, why: str) -> None:
    """running -> queued for another attempt, saying why in the row's notes."""
    row.status, row.worker, row.started_at = "queued", None, None
    row.notes = (row.notes + "\n" if row.notes else "") + f"[re-queued: {why}]"


class HeldRowsMixin:
    """Mixed into `SqlLineageStore`; relies on its `_tx`, `_lock` and `dialect`."""

    _tx: Callable[..., Any]
    _lock: Callable[..., Any]
    dialect: str

    def _db_now(self) -> Any:
        """Now by the database's clock (PostgreSQL: an instant in a `timestamptz` column, so
        sessions in any time zone agree), or by this host's clock (SQLite: one host)."""
        return func.now() if self.dialect == "postgresql" else utcnow()

    def heartbeat(self, search_id: str, exp_id: int, worker: str) -> bool:
        """Stamp a row `worker` holds (running, or a candidate it confirms); False if it holds it no more."""
        return bool(self._tx(lambda s: s.exec(
            update(TrialRow).where(
                TrialRow.search_id == search_id, TrialRow.exp_id == exp_id,
                col(TrialRow.status).in_(HELD), TrialRow.worker == worker,
            ).values(heartbeat_at=self._db_now())
        ).rowcount))

    def _held(self, status: str, search_id: str | None, stale_s: float | None) -> list[tuple[TrialRow, bool]]:
        """Rows of `status` that a worker holds, each with whether its stamp is stale."""
        if stale_s is None:
            stale = false()
        else:
            stale = func.coalesce(TrialRow.heartbeat_at < self._db_now() - timedelta(seconds=stale_s), False)
        stmt = select(TrialRow, stale.label("stale")).where(TrialRow.status == status,
                                                            col(TrialRow.worker).is_not(None))
        if search_id is not None:
            stmt = stmt.where(TrialRow.search_id == search_id)
        return self._tx(lambda s: [(r, bool(st)) for r, st in s.exec(stmt)], write=False)

    def reconcile(self, search_id: str | None, is_alive: Callable[[str], bool], max_attempts: int = MAX_ATTEMPTS,
                  stale_s: float | None = STALE_AFTER_S) -> list[Trial]:
        """Re-queue (or fail, past `max_attempts`) running rows whose worker is gone, and hand
        back candidates whose worker is gone. See the module docstring."""
        changed = []
        for row, stale in self._held(TrialStatus.RUNNING.value, search_id, stale_s):
            if stale or not is_alive(row.worker or ""):
                changed.append(self._reconcile_one(row, stale, max_attempts))
        legacy = self._tx(lambda s: list(s.exec(select(TrialRow).where(
            TrialRow.status == TrialStatus.RUNNING.value, col(TrialRow.worker).is_(None),
            *([TrialRow.search_id == search_id] if search_id is not None else [])))), write=False)
        changed += [self._reconcile_one(row, False, max_attempts) for row in legacy]
        return [t for t in changed if t is not None] + self.release_confirmations(search_id, is_alive, stale_s)

    def _reconcile_one(self, seen: TrialRow, stale: bool, max_attempts: int) -> Trial | None:
        def fn(s: Session) -> Trial | None:
            stmt = select(TrialRow).where(TrialRow.id == seen.id)
            row = s.exec(self._lock(stmt)).first()
            if row is None or row.status != "running" or row.worker != seen.worker or \
                    row.heartbeat_at != seen.heartbeat_at:
                return None  # someone moved or stamped it meanwhile
            gone = (f"worker {seen.worker} stopped heartbeating (last {_when(seen.heartbeat_at)}) "
                    if stale else f"worker {seen.worker} vanished ") + f"while running attempt {row.attempts}"
            if row.attempts < max_attempts:
                requeue(row, gone)
            else:
                row.status, row.finished_at = "infra_error", utcnow()
                row.failure = f"{gone}; not retried (attempt limit {max_attempts})"
            s.add(row)
            return _trial(row)

        return self._tx(fn)

    def release_confirmations(self, search_id: str | None, is_alive: Callable[[str], bool],
                              stale_s: float | None = STALE_AFTER_S) -> list[Trial]:
        """Unclaim candidates whose worker is gone (or stale); their recorded runs stay and count."""
        out = []
        for seen, stale in self._held(TrialStatus.CONFIRMING.value, search_id, stale_s):
            if stale or not is_alive(seen.worker or ""):
                out.append(self._tx(lambda s, seen=seen: self._release_one(s, seen)))
        return [t for t in out if t is not None]

    def _release_one(self, s: Session, seen: TrialRow) -> Trial | None:
        row = s.exec(self._lock(select(TrialRow).where(TrialRow.id == seen.id))).first()
        if row is None or row.status != TrialStatus.CONFIRMING.value or row.worker != seen.worker or \
                row.heartbeat_at != seen.heartbeat_at:
            return None
        row.notes = (row.notes + "\n" if row.notes else "") + f"[confirmation resumed: worker {row.worker} vanished]"
        row.worker = None
        s.add(row)
        return _trial(row)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t is not None else "never"
