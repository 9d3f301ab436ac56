"""Trials as a specialist sees them: visibility by arm, listings, preflight and submission.

Plain, synchronous code over `lineage/` and `tasks/` (no MCP); the blackboard, snapshot and
submission servers wrap it. Every function takes the calling specialist explicitly: the
servers resolve it from the connection, never from a tool argument.

Submission (`submit`), in order, so nothing is lost and nothing waits on the evaluator:
  1. validate the hypothesis, expected delta and notes (limits stated in the errors);
  2. snapshot the workspace (content-addressed) and note its origin as the parent;
  3. run the task's preflight on that same tree, under the workspace lock (syntax, size);
  4. create the row (status queued, exp id assigned now) and record a `submit` event;
  5. a failed preflight finishes the row at once (`preflight_crash` / `size_blocked`), after
     claiming it, so no evaluator worker runs it; otherwise workers pick it up.
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from lineage._engine import run_tx
from lineage.exceptions import TrialNotFoundError
from lineage.models import Outcome, Trial, TrialStatus
from lineage.tables import TrialRow
from servers.exceptions import HiddenError, RequestError
from servers.models import PreflightInfo, SubmitResult, SyntaxInfo, TrialInfo, TrialPage, TrialSummary
from servers.names import ref
from servers.app.runtime import SearchRuntime
from tasks.base import Task, syntax_errors

log = logging.getLogger(__name__)

HYPOTHESIS_MAX = 2_000
NOTES_MAX = 4_000
PAGE_MAX = 100
PREFLIGHT_STATUSES = ("preflight_crash", "size_blocked")


# ---------------------------------------------------------------- visibility
def can_see(rt: SearchRuntime, specialist: str, t: Trial, best_exp: int | None) -> bool:
    """Lineage on: every row. Lineage off: the current best and the caller's own rows."""
    return rt.config.lineage or t.specialist == specialist or t.exp_id == best_exp


def get_visible(rt: SearchRuntime, specialist: str, exp_id: int) -> Trial:
    """The row `exp_id` if the caller may see it.

    Raises:
        TrialNotFoundError: no such trial. HiddenError: the arm hides it.
    """
    t = rt.store.get_trial(rt.search_id, exp_id)
    if rt.config.lineage:
        return t
    best = rt.search().best_exp_id
    if not can_see(rt, specialist, t, best):
        raise HiddenError(
            f"exp {exp_id} is hidden: this search runs with the lineage off, so you can see only the "
            f"current best (exp {best}) and your own trials"
        )
    return t


def queue_position(rt: SearchRuntime, exp_id: int) -> int:
    """How many queued trials of the search are ahead of `exp_id` (lower exp ids)."""
    stmt = select(func.count()).select_from(TrialRow).where(
        TrialRow.search_id == rt.search_id, TrialRow.status == TrialStatus.QUEUED.value, TrialRow.exp_id < exp_id,
    )
    return int(run_tx(rt.store.engine, lambda s: s.exec(stmt).one(), write=False))


def info(rt: SearchRuntime, t: Trial) -> TrialInfo:
    position = queue_position(rt, t.exp_id) if t.status == TrialStatus.QUEUED else None
    return TrialInfo.of(t, position)


def trial_info(rt: SearchRuntime, specialist: str, exp_id: int) -> TrialInfo:
    return info(rt, get_visible(rt, specialist, exp_id))


def list_visible(
    rt: SearchRuntime, specialist: str, *, statuses: Sequence[str] | None, author: str | None,
    parent_exp: int | None, offset: int, limit: int, newest_first: bool,
) -> TrialPage:
    """One page of trials matching the filters (lineage off: the best plus your own rows)."""
    if not 1 <= limit <= PAGE_MAX or offset < 0:
        raise RequestError(f"limit is 1..{PAGE_MAX} and offset >= 0")
    note = ""
    if not rt.config.lineage:
        author, note = specialist, "lineage off: only the current best and your own trials are listed"
    rows = rt.store.list_trials(
        rt.search_id, statuses=list(statuses) if statuses else None,
        specialists=[author] if author else None, parent_exp=parent_exp, offset=offset,
        limit=limit + 1, newest_first=newest_first,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if not rt.config.lineage and offset == 0:
        rows = _with_best(rt, rows, statuses, parent_exp)
    return TrialPage(trials=[TrialSummary.of(t) for t in rows], offset=offset,
                     next_offset=offset + limit if more else None, note=note)


def _with_best(rt: SearchRuntime, rows: list[Trial], statuses: Sequence[str] | None,
               parent_exp: int | None) -> list[Trial]:
    best_exp = rt.search().best_exp_id
    if best_exp is None or any(t.exp_id == best_exp for t in rows):
        return rows
    best = rt.store.get_trial(rt.search_id, best_exp)
    if (statuses and best.status.value not in statuses) or (parent_exp is not None and best.parent_exp != parent_exp):
        return rows
    return [best, *rows]


# ---------------------------------------------------------------- checks
def run_preflight(task: Task, tree: Path) -> PreflightInfo:
    """The task's preflight on `tree`, as a tool result."""
    r = task.preflight(tree)
    return PreflightInfo(ok=r.ok, status=r.status, message=r.message, projected_bytes=r.projected_bytes,
                         checks=r.checks)


def preflight_workspace(rt: SearchRuntime, specialist: str) -> PreflightInfo:
    ws = rt.workspace(specialist)
    with ws.lock:
        return run_preflight(rt.task, ws.root)


def syntax_workspace(rt: SearchRuntime, specialist: str) -> SyntaxInfo:
    ws = rt.workspace(specialist)
    with ws.lock:
        errors = syntax_errors(ws.root, tuple(rt.task.editable))
    return SyntaxInfo(ok=not errors, errors=errors[:50])


# ---------------------------------------------------------------- submission
def check_submission(hypothesis: str, expected_delta: float, notes: str) -> None:
    """Raise `RequestError` naming the limit a field breaks."""
    if not hypothesis or not hypothesis.strip():
        raise RequestError("hypothesis is empty: give one sentence naming the change and why it should help")
    if len(hypothesis) > HYPOTHESIS_MAX:
        raise RequestError(f"hypothesis has {len(hypothesis)} characters; the limit is {HYPOTHESIS_MAX} "
                           "(one sentence is best; put details in notes)")
    if isinstance(expected_delta, bool) or not isinstance(expected_delta, (int, float)) \
            or not math.isfinite(expected_delta):
        raise RequestError("expected_delta must be a finite number: your signed prediction of the change "
                           "in the metric, in metric units")
    if len(notes) > NOTES_MAX:
        raise RequestError(f"notes has {len(notes)} characters; the limit is {NOTES_MAX}")


def _preflight(rt: SearchRuntime, tree: Path, digest: str) -> PreflightInfo | None:
    """The task's preflight; None when the check itself failed (recorded as an event)."""
    try:
        return run_preflight(rt.task, tree)
    except Exception:  # boundary: a broken check must not lose the submission
        log.exception("preflight of snapshot %s failed", digest[:12])
        rt.store.record_event(rt.search_id, "preflight_error",
                              payload={"snapshot": digest, "traceback": traceback.format_exc()[-4000:]})
        return None


def submit(rt: SearchRuntime, specialist: str, hypothesis: str, expected_delta: float, notes: str) -> SubmitResult:
    """Snapshot, preflight and queue the caller's workspace (see the module docstring)."""
    check_submission(hypothesis, expected_delta, notes)
    ws = rt.workspace(specialist)
    with ws.lock:  # the tree checked is the tree snapshotted: no edit lands in between
        origin = ws.origin()
        digest = ws.snapshot()
        check = _preflight(rt, ws.root, digest)
    t = rt.store.create_trial(rt.search_id, specialist=specialist, hypothesis=hypothesis.strip(),
                              parent_exp=origin.parent_exp, expected_delta=float(expected_delta),
                              notes=notes, snapshot=digest)
    rt.store.record_event(rt.search_id, "submit", specialist=specialist, exp_id=t.exp_id,
                          payload={"snapshot": digest, "parent_exp": origin.parent_exp,
                                   "preflight": "unchecked" if check is None else check.status or "ok"})
    if check is not None and not check.ok:
        t = _finish_preflight(rt, t, check)
    position = queue_position(rt, t.exp_id) if t.status == TrialStatus.QUEUED else None
    shown = check or PreflightInfo(ok=True, message="the task's preflight could not run; the evaluator will check")
    return SubmitResult(exp_id=t.exp_id, status=t.status.value, parent_exp=t.parent_exp, queue_position=position,
                        snapshot=digest, preflight=shown, message=_submit_message(t, position))


def _finish_preflight(rt: SearchRuntime, t: Trial, check: PreflightInfo) -> Trial:
    """Claim the fresh row and finish it with the preflight status (no worker will run it)."""
    status = check.status if check.status in PREFLIGHT_STATUSES else "preflight_crash"
    claimed = rt.store.claim_trial(rt.search_id, f"preflight-{os.getpid()}", exp_id=t.exp_id)
    if claimed is None:  # a worker was faster; its own checks will fail the same way
        return rt.store.get_trial(rt.search_id, t.exp_id)
    outcome = Outcome(status=status, failure=check.message[:2000], artifact_bytes=check.projected_bytes)
    done = rt.store.finish_trial(rt.search_id, t.exp_id, outcome)
    rt.store.record_event(rt.search_id, status, specialist=t.specialist, exp_id=t.exp_id,
                          payload={"message": check.message[:2000]})
    return done


def _submit_message(t: Trial, position: int | None) -> str:
    if t.status.is_finished():
        return (f"exp {t.exp_id:03d} was recorded as {t.status.value} without running: {t.failure} "
                "Fix it in your workspace and submit again.")
    ahead = f"{position} trial(s) ahead in the queue" if position is not None else "running"
    return f"exp {t.exp_id:03d} is {t.status.value} ({ahead}); call {ref('wait_trial')} with exp_id={t.exp_id}."


def ensure_exists(rt: SearchRuntime, exp_id: int) -> Trial:
    """The row `exp_id` or `TrialNotFoundError` with the next step."""
    try:
        return rt.store.get_trial(rt.search_id, exp_id)
    except TrialNotFoundError as exc:
        raise TrialNotFoundError(f"there is no exp {exp_id} in this search; {ref('list_trials')} shows the ids") from exc
