"""Evaluator jobs inside a search: a cap of runs per caller for the whole search, and events.

A search's evaluator is an explicit opt-in (`serve --server all`); where it is served, each
evaluation or calibration a caller queues is first admitted here, in one write transaction
with the count, so several serve processes share one cap, and a restart does not reset it:

    event "evaluator_job"       {job_id, kind, runs, owner}      when it is queued
    event "evaluator_job_done"  {job_id, state, status, score}   when it ends

`evaluate` counts one run, `calibrate` one per run. The caller is the event's specialist
("local", the operator over stdio without --specialist, is recorded as none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from lineage._engine import run_tx
from lineage.tables import EventRow, SearchRow
from servers.exceptions import RequestError
from servers.names import ref

if TYPE_CHECKING:
    from lineage.sql import SqlLineageStore
    from servers.app.jobs import JobView

QUEUED, ENDED = "evaluator_job", "evaluator_job_done"
LOCAL = "local"


class SearchLedger:
    """Admits a search's evaluator jobs against `cap` runs per caller and records them."""

    def __init__(self, store: SqlLineageStore, search_id: str, cap: int) -> None:
        self.store, self.search_id, self.cap = store, search_id, cap

    def _who(self, owner: str) -> str | None:
        return None if owner == LOCAL else owner

    def used(self, owner: str) -> int:
        """Runs the caller has queued in this search so far."""
        return run_tx(self.store.engine, lambda s: self._used(s, owner), write=False)

    def _used(self, s: Session, owner: str) -> int:
        who = self._who(owner)
        stmt = select(EventRow.payload).where(EventRow.search_id == self.search_id, EventRow.kind == QUEUED)
        stmt = stmt.where(col(EventRow.specialist).is_(None) if who is None else EventRow.specialist == who)
        return sum(int(p.get("runs", 1)) for p in s.exec(stmt))

    def admit(self, owner: str, job_id: str, kind: str, runs: int) -> None:
        """Record the job, or raise `RequestError` if it would pass the caller's cap."""
        def fn(s: Session) -> None:
            if self.store.dialect == "postgresql":  # SQLite's write transaction already serialises
                s.exec(select(SearchRow).where(SearchRow.id == self.search_id).with_for_update()).first()
            used = self._used(s, owner)
            if used + runs > self.cap:
                raise RequestError(
                    f"you have used {used} of your {self.cap} evaluator runs in this search and this job needs "
                    f"{runs}; to test an idea now, {ref('submit_trial')} it (a trial counts against the budget)")
            s.add(EventRow(search_id=self.search_id, kind=QUEUED, specialist=self._who(owner),
                           payload={"job_id": job_id, "kind": kind, "runs": runs, "owner": owner}))

        run_tx(self.store.engine, fn, write=True)

    def finished(self, owner: str, job: JobView) -> None:
        """Record how the job ended."""
        payload: dict[str, Any] = {"job_id": job.job_id, "state": job.state}
        if job.outcome is not None:
            payload |= {"status": job.outcome.status, "score": job.outcome.score}
        if job.calibration is not None:
            payload |= {"mean": job.calibration.mean, "spread": job.calibration.spread}
        self.store.record_event(self.search_id, ENDED, specialist=self._who(owner), payload=payload)
