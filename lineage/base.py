"""The lineage store protocol: the memory of every search.

Invariants (every implementation, checked by tests/contracts/lineage_store.py):

- `exp_id` is a per-search integer assigned atomically by `create_trial`, at submission time.
  Exp 0 is the baseline row. Ids are never reused, even after a crash.
- A trial moves queued -> running through `claim_trial`, an atomic update that exactly one
  worker wins; running -> a finished status through `finish_trial` (or `cancel_trial` /
  `reconcile`). Finished rows are immutable: any later write raises `TrialFinishedError`.
- `finish_trial` takes the evaluator's frozen `Outcome` whole. Status "valid" applies the keep
  rule: keep iff the score beats the current best by more than the search's noise margin;
  otherwise discard, with a note saying whether it was worse or within noise. The best is
  updated in the same transaction.
- Readers get frozen models (`Trial`, `Search`), never live ORM rows.
- Safe for many threads and many processes on one SQLite file (WAL, busy timeout, short
  immediate transactions) and for many hosts on PostgreSQL. No lock error reaches a caller.
- A worker stamps the rows it holds every `HEARTBEAT_S` (`heartbeat`); a row whose stamp is older
  than `STALE_AFTER_S` has lost its worker, on whatever host it ran. A late worker cannot
  finish a row it no longer holds (`finish_trial(worker=...)` raises).
- Reconciliation never drops a row: a running trial whose worker is gone is re-queued (up to
  `max_attempts`) or finished as `infra_error`, with a note; a candidate in confirmation whose
  worker is gone is handed back, its recorded confirmation runs kept.
- With `SearchConfig.confirm_runs` K > 0, a trial the keep rule would keep becomes
  `confirming` (unfinished; the best unchanged) until `finish_confirmation` keeps or discards
  it after K interleaved paired runs against the best (`lineage/_sql_confirm.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol, runtime_checkable

from lineage.models import (
    MAX_ATTEMPTS,
    STALE_AFTER_S,
    ConfirmationRun,
    Event,
    Outcome,
    Search,
    SearchConfig,
    SessionRecord,
    Trial,
    TrialStatus,
)


@runtime_checkable
class LineageStore(Protocol):
    # ---------------------------------------------------------------- searches
    def create_search(self, search_id: str, config: SearchConfig) -> Search:
        """Create a search. Raises `SearchExistsError` if the id is taken."""

    def get_search(self, search_id: str) -> Search:
        """Raises `SearchNotFoundError`."""

    def list_searches(self) -> list[Search]: ...

    def set_baseline(
        self, search_id: str, score: float, spread: float | None = None, n: int = 1,
        *, snapshot: str | None = None, note: str = "", metrics: dict[str, Any] | None = None,
    ) -> Trial:
        """Write (or overwrite, while no trial has finished) row 0 and make it the best."""

    # ---------------------------------------------------------------- trial lifecycle
    def create_trial(
        self, search_id: str, *, specialist: str, hypothesis: str = "",
        parent_exp: int | None = None, expected_delta: float | None = None, notes: str = "",
        snapshot: str | None = None, seeds: int | None = None, gpus: int = 0,
    ) -> Trial:
        """Queue a trial; its exp_id is assigned atomically now."""

    def claim_trial(self, search_id: str | None, worker: str, exp_id: int | None = None, *,
                    searches: Collection[str] | None = None) -> Trial | None:
        """queued -> running for the oldest queued trial (or `exp_id`); None if none won.

        `search_id` None claims across searches, oldest submission first; `searches` limits that
        to these searches (an empty collection claims nothing). The row is stamped as `heartbeat` does.
        """

    def heartbeat(self, search_id: str, exp_id: int, worker: str) -> bool:
        """Stamp a row `worker` holds (running, or a candidate it confirms) with the database's time.

        Returns:
            False when `worker` holds the row no more (finished, cancelled, re-queued, claimed by another).
        """

    def finish_trial(self, search_id: str, exp_id: int, outcome: Outcome, *, max_attempts: int = MAX_ATTEMPTS,
                     worker: str | None = None) -> Trial:
        """Finish a queued/running trial with the evaluator's outcome (see the module docstring).

        An `infra_error` with `retry` (the infrastructure lost the run) re-queues a running row
        that has used fewer than `max_attempts` attempts, by the rule `reconcile` applies to a
        vanished worker; the returned row is then `queued` again.

        Raises:
            TrialStateError: a status outside `OUTCOME_STATUSES`, a candidate in confirmation, or
                (with `worker`) a row that `worker` holds no more: a late worker's result is dropped.
            TrialFinishedError: the row is already finished. TrialNotFoundError: no such row.
        """

    def cancel_trial(self, search_id: str, exp_id: int, reason: str) -> Trial:
        """queued/running/confirming -> cancelled. Raises `TrialFinishedError` if already finished."""

    # ---------------------------------------------------------------- confirmation of candidates
    def claim_confirmation(self, search_id: str, worker: str) -> Trial | None:
        """The most promising unclaimed `confirming` trial (best score, then oldest), now `worker`'s;
        None while one is in hand."""

    def record_confirmation_run(self, search_id: str, run: ConfirmationRun) -> None:
        """Record one finished confirmation run; the same (exp, ref, idx) twice keeps the first."""

    def confirmation_runs(self, search_id: str, exp_id: int) -> list[ConfirmationRun]:
        """The candidate's recorded runs, by reference then interleaved order."""

    def finish_confirmation(self, search_id: str, exp_id: int, *, keep: bool, decision: str,
                            summary: dict[str, Any], worker: str | None = None) -> Trial:
        """confirming -> keep (the best now) or discard, with the decision and its interval; a
        keep also discards the waiting candidates the new best leaves within the margin
        ("superseded"). `worker`: refuse (TrialStateError) unless that worker holds the candidate."""

    def reconcile(
        self, search_id: str | None, is_alive: Callable[[str], bool], max_attempts: int = MAX_ATTEMPTS,
        stale_s: float | None = STALE_AFTER_S,
    ) -> list[Trial]:
        """Re-queue or mark `infra_error` every running trial whose worker is not alive, or whose
        heartbeat is older than `stale_s` seconds (None: ignore heartbeats); hand back candidates
        in confirmation by the same rule. Each row is moved once, whoever else reconciles."""

    # ---------------------------------------------------------------- reads
    def get_trial(self, search_id: str, exp_id: int) -> Trial:
        """Raises `TrialNotFoundError`."""

    def list_trials(
        self, search_id: str, *, statuses: Iterable[TrialStatus | str] | None = None,
        specialists: Iterable[str] | None = None, parent_exp: int | None = None,
        offset: int = 0, limit: int | None = None, newest_first: bool = False,
        include_baseline: bool = True,
    ) -> list[Trial]: ...

    def count_trials(self, search_id: str) -> dict[str, int]:
        """status -> count, baseline included under 'baseline'."""

    def leaderboard(self, search_id: str, limit: int = 20) -> list[Trial]:
        """Kept trials (and the baseline), best first, in the metric's direction."""

    def ancestry(self, search_id: str, exp_id: int, limit: int = 200) -> list[Trial]:
        """Root -> exp_id chain following parent_exp."""

    def ancestry_ids(self, search_id: str, exp_id: int, limit: int = 200) -> list[int]:
        """The same chain as ids only, in one query (cycles cut)."""

    def get_trials(self, search_id: str, exp_ids: list[int]) -> list[Trial]:
        """The trials with these exp ids, in the order given (missing ids skipped)."""

    def count(self, search_id: str, *, parent_exp: int | None = None, specialist: str | None = None,
              status: str | None = None) -> int:
        """Trials (baseline excluded), optionally by parent, specialist or status; indexed."""

    # ---------------------------------------------------------------- events and sessions
    def record_event(
        self, search_id: str, kind: str, *, specialist: str | None = None,
        exp_id: int | None = None, payload: dict[str, Any] | None = None,
    ) -> None: ...

    def list_events(self, search_id: str, *, after_id: int = 0, limit: int = 1000) -> list[Event]: ...

    def record_session(self, session: SessionRecord) -> SessionRecord:
        """Insert (id None) or update a specialist session; returns it with its id."""

    def list_sessions(self, search_id: str) -> list[SessionRecord]: ...
