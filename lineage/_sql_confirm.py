"""Confirmation of candidate keeps, in the store: claim, record runs, decide.

A trial the keep rule would keep, in a search with `confirm_runs` K > 0, is finished into
`confirming` with no worker: the best does not change yet. A worker claims it
(`claim_confirmation`: one candidate per search at a time, so each is compared with the best
as it stands, and the most promising first, the one with the best score), runs K seeds of the
candidate and K of the best interleaved, records each run as it ends
(`record_confirmation_run`: a crash loses at most the run in flight, and a resumed worker
continues after the last recorded one), then `finish_confirmation` keeps it (it becomes the
best) or discards it, with the decision and the interval in the row. A keep also settles at
once every waiting candidate that no longer beats the new best by the margin ("superseded"),
so candidates that piled up while one was confirmed cost no re-runs once a better one is kept.
`reconcile` hands a candidate whose worker died back to the queue of candidates
(`lineage/_sql_held.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from lineage._convert import finite as _finite
from lineage._convert import trial_model as _trial
from lineage.exceptions import TrialStateError
from lineage.keep import superseded
from lineage.models import ConfirmationRun, SearchConfig, Trial, TrialStatus
from lineage.tables import ConfirmationRunRow, SearchRow, TrialRow, utcnow

CONFIRMING = TrialStatus.CONFIRMING.value


class ConfirmMixin:
    """Mixed into `SqlLineageStore`; relies on its `_tx`, `_lock`, `_search_row`, `_open_row`."""

    _tx: Callable[..., Any]
    _lock: Callable[..., Any]
    _search_row: Callable[..., Any]
    _open_row: Callable[..., Any]
    _db_now: Callable[[], Any]

    def claim_confirmation(self, search_id: str, worker: str) -> Trial | None:
        """Give the search's most promising unclaimed candidate (best score; the oldest of equals)
        to `worker`, unless one is in hand: if it is confirmed, the others are judged against it."""
        waiting = select(TrialRow.id).where(TrialRow.search_id == search_id, TrialRow.status == CONFIRMING,
                                            col(TrialRow.worker).is_(None)).limit(1)
        if self._tx(lambda s: s.exec(waiting).first(), write=False) is None:
            return None  # the common case, answered without a write lock

        def fn(s: Session) -> Trial | None:
            search = self._search_row(s, search_id, lock=True)  # serialises claims within the search
            rows = list(s.exec(select(TrialRow).where(TrialRow.search_id == search_id,
                                                      TrialRow.status == CONFIRMING).order_by(TrialRow.exp_id)))
            if not rows or any(r.worker for r in rows):
                return None
            sign = 1.0 if SearchConfig.model_validate(search.config).lower_is_better else -1.0
            rows.sort(key=lambda r: (sign * r.score if r.score is not None else float("inf"), r.exp_id))
            won = s.exec(update(TrialRow).where(TrialRow.id == rows[0].id, TrialRow.status == CONFIRMING,
                                                col(TrialRow.worker).is_(None))
                         .values(worker=worker, heartbeat_at=self._db_now())).rowcount
            if won != 1:
                return None
            s.refresh(rows[0])
            return _trial(rows[0])

        return self._tx(fn)

    def record_confirmation_run(self, search_id: str, run: ConfirmationRun) -> None:
        """Record one finished confirmation run (recording the same run twice keeps the first)."""
        def fn(s: Session) -> None:
            exists = s.exec(select(ConfirmationRunRow.id).where(
                ConfirmationRunRow.search_id == search_id, ConfirmationRunRow.exp_id == run.exp_id,
                ConfirmationRunRow.ref_exp == run.ref_exp, ConfirmationRunRow.idx == run.idx)).first()
            if exists is None:
                data = run.model_dump()
                data["score"] = _finite(data["score"])
                s.add(ConfirmationRunRow(search_id=search_id, **data))

        self._tx(fn)

    def confirmation_runs(self, search_id: str, exp_id: int) -> list[ConfirmationRun]:
        """Every recorded run of candidate `exp_id`, in interleaved order (all references)."""
        stmt = (select(ConfirmationRunRow).where(ConfirmationRunRow.search_id == search_id,
                                                 ConfirmationRunRow.exp_id == exp_id)
                .order_by(ConfirmationRunRow.ref_exp, ConfirmationRunRow.idx))
        return self._tx(lambda s: [ConfirmationRun.model_validate(r.model_dump()) for r in s.exec(stmt)],
                        write=False)

    def finish_confirmation(self, search_id: str, exp_id: int, *, keep: bool, decision: str,
                            summary: dict[str, Any], worker: str | None = None) -> Trial:
        """Decide a candidate: keep (it becomes the best) or discard; `summary` goes to its
        metrics under "confirmation" (runs, scores, interval)."""
        def fn(s: Session) -> Trial:
            search = self._search_row(s, search_id, lock=True)
            row = self._open_row(s, search_id, exp_id)
            if row.status != CONFIRMING:
                raise TrialStateError(f"exp {exp_id} is {row.status}, not a candidate in confirmation")
            if worker is not None and row.worker != worker:
                raise TrialStateError(
                    f"candidate exp {exp_id} is no longer held by worker {worker} (held by {row.worker or 'nobody'}: "
                    "handed back after its heartbeat went stale?); this decision is dropped")
            row.metrics = {**row.metrics, "confirmation": summary}
            row.decision, row.finished_at = decision, utcnow()
            row.best_at_finish = search.best_exp_id
            if keep:
                row.status = TrialStatus.KEEP.value
                search.best_exp_id, search.best_score = row.exp_id, row.score
                s.add(search)
            else:
                row.status = TrialStatus.DISCARD.value
            s.add(row)
            if keep:
                self._supersede(s, search, exclude=exp_id)
            s.flush()
            return _trial(row)

        return self._tx(fn)

    @staticmethod
    def _supersede(s: Session, search: SearchRow, *, exclude: int) -> None:
        """Discard the waiting (unclaimed) candidates that no longer beat the new best by the margin."""
        config = SearchConfig.model_validate(search.config)
        margin = config.margin.effective(search.baseline_spread)
        waiting = s.exec(select(TrialRow).where(TrialRow.search_id == search.id, TrialRow.status == CONFIRMING,
                                                col(TrialRow.worker).is_(None), TrialRow.exp_id != exclude))
        for other in waiting:
            gone = superseded(other.score, search.best_score, search.best_exp_id, margin,  # type: ignore[arg-type]
                              config.lower_is_better)
            if gone is None:
                continue  # still a candidate: confirmed against the new best at its turn
            other.status, (other.decision, summary) = TrialStatus.DISCARD.value, gone
            other.finished_at, other.best_at_finish = utcnow(), search.best_exp_id
            other.metrics = {**other.metrics, "confirmation": summary}
            s.add(other)
