"""`SqlLineageStore`: the lineage store on SQLite (default) or PostgreSQL (by URL).

See `lineage/base.py` for the invariants. Every method is one short transaction; writes that
decide something (exp ids, claims, keep decisions) lock the rows they read first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from lineage._engine import make_engine, normalise_url, run_tx
from lineage.exceptions import (
    BudgetExhaustedError,
    SearchExistsError,
    SearchNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
    TrialStateError,
)
from lineage._convert import finite as _finite
from lineage._convert import search_model as _search
from lineage._convert import trial_model as _trial
from lineage._sql_log import EventLogMixin
from lineage._sql_reads import ReadsMixin
from lineage.keep import decide
from lineage.models import (
    BUDGET_EXEMPT,
    LOG_TAIL_CHARS,
    MAX_ATTEMPTS,
    OUTCOME_STATUSES,
    Outcome,
    Search,
    SearchConfig,
    Trial,
    TrialStatus,
)
from lineage._sql_confirm import ConfirmMixin
from lineage._sql_held import HeldRowsMixin, requeue
from lineage.tables import SearchRow, TrialRow, utcnow


class SqlLineageStore(HeldRowsMixin, EventLogMixin, ReadsMixin, ConfirmMixin):
    """The lineage store. `url`: a SQLAlchemy URL or a path to a SQLite file."""

    def __init__(self, url: str | Path) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self, fn: Callable[[Session], Any], write: bool = True) -> Any:
        return run_tx(self.engine, fn, write=write)

    def _lock(self, stmt):  # type: ignore[no-untyped-def]
        return stmt.with_for_update() if self.dialect == "postgresql" else stmt

    # ---------------------------------------------------------------- searches
    def create_search(self, search_id: str, config: SearchConfig) -> Search:
        def fn(s: Session) -> Search:
            if s.get(SearchRow, search_id) is not None:
                raise SearchExistsError(f"search {search_id!r} already exists")
            row = SearchRow(id=search_id, config=config.model_dump(mode="json"))
            s.add(row)
            s.flush()
            return _search(row)

        return self._tx(fn)

    def _search_row(self, s: Session, search_id: str, lock: bool = False) -> SearchRow:
        stmt = select(SearchRow).where(SearchRow.id == search_id)
        row = s.exec(self._lock(stmt) if lock else stmt).first()
        if row is None:
            raise SearchNotFoundError(f"no search {search_id!r} in {self.url}")
        return row

    def get_search(self, search_id: str) -> Search:
        return self._tx(lambda s: _search(self._search_row(s, search_id)), write=False)

    def list_searches(self) -> list[Search]:
        return self._tx(
            lambda s: [_search(r) for r in s.exec(select(SearchRow).order_by(SearchRow.created_at))],
            write=False,
        )

    def update_search_config(self, search_id: str, config: SearchConfig) -> Search:
        def fn(s: Session) -> Search:
            row = self._search_row(s, search_id, lock=True)
            row.config = config.model_dump(mode="json")
            s.add(row)
            return _search(row)

        return self._tx(fn)

    def set_baseline(
        self, search_id: str, score: float, spread: float | None = None, n: int = 1,
        *, snapshot: str | None = None, note: str = "", metrics: dict[str, Any] | None = None,
    ) -> Trial:
        if _finite(score) is None:
            raise ValueError(f"baseline score must be a finite number, got {score!r}")

        def fn(s: Session) -> Trial:
            search = self._search_row(s, search_id, lock=True)
            done = s.exec(
                select(func.count()).select_from(TrialRow).where(
                    TrialRow.search_id == search_id, TrialRow.exp_id > 0,
                    col(TrialRow.status).in_([t.value for t in TrialStatus if t.is_finished()]),
                )
            ).one()
            if done:
                raise TrialStateError("the baseline can only be set before any trial has finished")
            row = s.exec(
                select(TrialRow).where(TrialRow.search_id == search_id, TrialRow.exp_id == 0)
            ).first() or TrialRow(search_id=search_id, exp_id=0, specialist="baseline", status="baseline")
            spread_text = f", spread={spread:.6g}" if spread is not None else ""
            row.hypothesis = f"calibrated baseline ({n} runs, mean={score:.6g}{spread_text})"
            row.score, row.notes, row.snapshot = float(score), note, snapshot
            row.metrics = dict(metrics or {})
            row.finished_at = row.finished_at or utcnow()
            s.add(row)
            search.baseline_score, search.baseline_spread, search.baseline_n = float(score), spread, n
            search.best_exp_id, search.best_score = 0, float(score)
            s.add(search)
            s.flush()
            return _trial(row)

        return self._tx(fn)

    # ---------------------------------------------------------------- lifecycle
    def create_trial(
        self, search_id: str, *, specialist: str, hypothesis: str = "",
        parent_exp: int | None = None, expected_delta: float | None = None, notes: str = "",
        snapshot: str | None = None, seeds: int | None = None, gpus: int = 0,
    ) -> Trial:
        def fn(s: Session) -> Trial:
            search = self._search_row(s, search_id, lock=True)
            self._check_budget(s, search)
            exp_id = s.exec(
                update(SearchRow).where(SearchRow.id == search_id)
                .values(next_exp_id=SearchRow.next_exp_id + 1)
                .returning(SearchRow.next_exp_id)
            ).scalar_one() - 1
            row = TrialRow(
                search_id=search_id, exp_id=exp_id, specialist=specialist, status="queued",
                parent_exp=parent_exp, hypothesis=hypothesis, expected_delta=_finite(expected_delta),
                notes=notes, snapshot=snapshot, seeds=seeds, gpus=gpus,
            )
            s.add(row)
            s.flush()
            return _trial(row)

        return self._tx(fn)

    @staticmethod
    def _check_budget(s: Session, search: SearchRow) -> None:
        budget = search.config.get("max_trials")
        if budget is None:
            return
        used = s.exec(
            select(func.count()).select_from(TrialRow).where(
                TrialRow.search_id == search.id, TrialRow.exp_id > 0,
                col(TrialRow.status).not_in(BUDGET_EXEMPT),
            )
        ).one()
        if used >= budget:
            raise BudgetExhaustedError(f"the trial budget of search {search.id!r} is spent ({used}/{budget})")

    def claim_trial(self, search_id: str | None, worker: str, exp_id: int | None = None, *,
                    searches: Collection[str] | None = None) -> Trial | None:
        if searches is not None and not searches:
            return None

        def fn(s: Session) -> Trial | None:
            stmt = select(TrialRow).where(TrialRow.status == "queued")
            if search_id is not None:
                stmt = stmt.where(TrialRow.search_id == search_id)
            if searches is not None:
                stmt = stmt.where(col(TrialRow.search_id).in_(list(searches)))
            if exp_id is not None:
                stmt = stmt.where(TrialRow.exp_id == exp_id)
            stmt = stmt.order_by(TrialRow.exp_id if search_id else TrialRow.id).limit(1)
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            row = s.exec(stmt).first()
            if row is None:
                return None
            won = s.exec(
                update(TrialRow).where(TrialRow.id == row.id, TrialRow.status == "queued")
                .values(status="running", worker=worker, started_at=utcnow(), heartbeat_at=self._db_now(),
                        attempts=TrialRow.attempts + 1)
            ).rowcount
            if won != 1:
                return None
            s.refresh(row)
            return _trial(row)

        return self._tx(fn)

    def _open_row(self, s: Session, search_id: str, exp_id: int) -> TrialRow:
        stmt = select(TrialRow).where(TrialRow.search_id == search_id, TrialRow.exp_id == exp_id)
        row = s.exec(self._lock(stmt)).first()
        if row is None:
            raise TrialNotFoundError(f"no trial exp {exp_id} in search {search_id!r}")
        if TrialStatus(row.status).is_finished():
            raise TrialFinishedError(f"exp {exp_id} is already finished ({row.status}); rows are immutable")
        return row

    def finish_trial(self, search_id: str, exp_id: int, outcome: Outcome, *, max_attempts: int = MAX_ATTEMPTS,
                     worker: str | None = None) -> Trial:
        status = outcome.status
        if status not in OUTCOME_STATUSES:
            raise TrialStateError(f"cannot finish with status {status!r}; use one of {OUTCOME_STATUSES}")

        def fn(s: Session) -> Trial:
            search = self._search_row(s, search_id, lock=True)
            row = self._open_row(s, search_id, exp_id)
            if row.status == TrialStatus.CONFIRMING.value:
                raise TrialStateError(f"exp {exp_id} is being confirmed; `finish_confirmation` decides it")
            if worker is not None and row.worker != worker:
                raise TrialStateError(
                    f"exp {exp_id} is no longer held by worker {worker} (it is {row.status}, held by "
                    f"{row.worker or 'nobody'}: re-queued after its heartbeat went stale?); this result is dropped")
            if (outcome.retry and status == "infra_error" and row.status == TrialStatus.RUNNING.value
                    and row.attempts < max_attempts):
                requeue(row, f"the infrastructure lost attempt {row.attempts} ({outcome.failure or 'no reason given'})")
                s.add(row)
                return _trial(row)
            self._apply_outcome(row, outcome)
            final = status
            if status == "valid" and row.score is None:
                final, row.failure = "crash", row.failure or "the evaluator reported no finite score"
            if final == "valid":
                final = self._keep_rule(search, row)
            row.status = final
            row.finished_at = None if final == TrialStatus.CONFIRMING.value else utcnow()
            s.add(row)
            s.add(search)
            s.flush()
            return _trial(row)

        return self._tx(fn)

    @staticmethod
    def _apply_outcome(row: TrialRow, outcome: Outcome) -> None:
        row.score = _finite(outcome.score)
        row.metrics = dict(outcome.metrics)
        row.timings = {k: float(v) for k, v in outcome.timings.items()}
        row.artifact_bytes = outcome.artifact_bytes
        row.failure = outcome.failure
        row.log_tail = outcome.log_tail[-LOG_TAIL_CHARS:]
        row.self_reported = outcome.self_reported
        row.unisolated = outcome.unisolated

    @staticmethod
    def _keep_rule(search: SearchRow, row: TrialRow) -> str:
        config = SearchConfig.model_validate(search.config)
        margin = config.margin.effective(search.baseline_spread)
        d = decide(row.score, search.best_score, search.best_exp_id, margin, config.lower_is_better)  # type: ignore[arg-type]
        row.delta, row.margin, row.decision = d.delta, d.margin, d.decision
        row.best_at_finish = search.best_exp_id
        if d.keep and config.confirm_runs and search.best_exp_id is not None:
            row.worker = None  # unclaimed: the next free worker confirms it (`claim_confirmation`)
            row.decision = f"candidate: {d.decision}; to be confirmed by {config.confirm_runs} paired runs"
            return TrialStatus.CONFIRMING.value
        if d.keep:
            search.best_exp_id, search.best_score = row.exp_id, row.score
            return TrialStatus.KEEP.value
        return TrialStatus.DISCARD.value

    def cancel_trial(self, search_id: str, exp_id: int, reason: str) -> Trial:
        def fn(s: Session) -> Trial:
            row = self._open_row(s, search_id, exp_id)
            row.status, row.failure, row.finished_at = "cancelled", reason, utcnow()
            s.add(row)
            return _trial(row)

        return self._tx(fn)

    def import_trials(
        self, search_id: str, rows: list[dict[str, Any]], *, best_exp_id: int | None,
        best_score: float | None, baseline_score: float | None = None,
        baseline_spread: float | None = None,
    ) -> int:
        """Insert already-finished rows verbatim (release-artifact import). Returns the count.

        Each dict holds `Trial` fields; statuses must be finished ones. The search must hold no
        trials yet. Ids continue after the largest imported exp_id.
        """
        def fn(s: Session) -> int:
            search = self._search_row(s, search_id, lock=True)
            if s.exec(select(func.count()).select_from(TrialRow).where(TrialRow.search_id == search_id)).one():
                raise TrialStateError(f"search {search_id!r} already holds trials; import into a new one")
            for data in rows:
                if not TrialStatus(data["status"]).is_finished():
                    raise TrialStateError(f"exp {data['exp_id']}: cannot import unfinished status {data['status']}")
                s.add(TrialRow(search_id=search_id, **data))
            search.next_exp_id = max((int(d["exp_id"]) for d in rows), default=0) + 1
            search.best_exp_id, search.best_score = best_exp_id, _finite(best_score)
            search.baseline_score, search.baseline_spread = _finite(baseline_score), _finite(baseline_spread)
            search.baseline_n = 1 if baseline_score is not None else 0
            s.add(search)
            return len(rows)

        return self._tx(fn)

    # ---------------------------------------------------------------- reads
    def get_trial(self, search_id: str, exp_id: int) -> Trial:
        def fn(s: Session) -> Trial:
            row = s.exec(
                select(TrialRow).where(TrialRow.search_id == search_id, TrialRow.exp_id == exp_id)
            ).first()
            if row is None:
                raise TrialNotFoundError(f"no trial exp {exp_id} in search {search_id!r}")
            return _trial(row)

        return self._tx(fn, write=False)

    def list_trials(
        self, search_id: str, *, statuses: Iterable[TrialStatus | str] | None = None,
        specialists: Iterable[str] | None = None, parent_exp: int | None = None,
        offset: int = 0, limit: int | None = None, newest_first: bool = False,
        include_baseline: bool = True,
    ) -> list[Trial]:
        stmt = select(TrialRow).where(TrialRow.search_id == search_id)
        if statuses is not None:
            stmt = stmt.where(col(TrialRow.status).in_([TrialStatus(x).value for x in statuses]))
        if specialists is not None:
            stmt = stmt.where(col(TrialRow.specialist).in_(list(specialists)))
        if parent_exp is not None:
            stmt = stmt.where(TrialRow.parent_exp == parent_exp)
        if not include_baseline:
            stmt = stmt.where(TrialRow.exp_id > 0)
        stmt = stmt.order_by(col(TrialRow.exp_id).desc() if newest_first else TrialRow.exp_id)
        stmt = stmt.offset(max(0, offset)).limit(limit)
        return self._tx(lambda s: [_trial(r) for r in s.exec(stmt)], write=False)

    def count_trials(self, search_id: str) -> dict[str, int]:
        stmt = (
            select(TrialRow.status, func.count()).where(TrialRow.search_id == search_id)
            .group_by(TrialRow.status)
        )
        return self._tx(lambda s: {st: n for st, n in s.exec(stmt)}, write=False)

    def leaderboard(self, search_id: str, limit: int = 20) -> list[Trial]:
        def fn(s: Session) -> list[Trial]:
            config = SearchConfig.model_validate(self._search_row(s, search_id).config)
            order = col(TrialRow.score).asc() if config.lower_is_better else col(TrialRow.score).desc()
            stmt = (
                select(TrialRow).where(
                    TrialRow.search_id == search_id,
                    col(TrialRow.status).in_(["keep", "baseline"]), col(TrialRow.score).is_not(None),
                ).order_by(order, TrialRow.exp_id).limit(limit)
            )
            return [_trial(r) for r in s.exec(stmt)]

        return self._tx(fn, write=False)

