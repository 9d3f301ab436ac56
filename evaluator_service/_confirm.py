"""Confirming a candidate keep: K re-runs of it and K of the best, interleaved, then a test.

A trial the keep rule would keep (in a search with `confirm_runs` K > 0) waits as
`confirming`; the best does not change. A worker that claims it runs, one job at a time on the
search's backend (the same slot type as any trial), the candidate and the best alternately,
A B A B ..., each run one seed (pair i uses seed `SEED_BASE + i` for both, so the pair
differs only in the code) and no smoke phase (both passed it). Each run is recorded as it ends, so a killed worker loses
at most the run in flight and the next worker continues. Then `lineage.keep.confirm` keeps the
candidate only if the paired improvement's one-sided lower bound beats the noise margin; the
decision line and a summary (runs, order, interval) go into the row.

The store hands out the most promising candidate first and, on a keep, settles the waiting ones
the new best leaves within the margin (`lineage/_sql_confirm.py`). If the best changed while a
candidate waited anyway, it is first re-decided against the new best here and confirmed against it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lineage.exceptions import LineageError
from lineage.keep import confirm, superseded
from lineage.models import ConfirmationRun, Trial

if TYPE_CHECKING:
    from evaluator_service.worker import LineageWorker

log = logging.getLogger(__name__)
SEED_BASE = 100_000  # confirmation seeds: clear of every trial's and calibration's seeds


def confirm_candidate(worker: LineageWorker, candidate: Trial) -> Trial | None:
    """Confirm `candidate` (claimed by `worker`) and finish its row; None if it was cut short."""
    store, sid = worker.store, worker.search_id
    search = store.get_search(sid)
    cfg, best_id = search.config, search.best_exp_id
    margin = cfg.margin.effective(search.baseline_spread)
    assert best_id is not None and candidate.score is not None
    try:
        gone = None if candidate.best_at_finish == best_id else superseded(
            candidate.score, search.best_score, best_id, margin, cfg.lower_is_better)  # type: ignore[arg-type]
        if gone is not None:
            return store.finish_confirmation(sid, candidate.exp_id, keep=False, decision=gone[0], summary=gone[1],
                                             worker=worker.id)
        runs = _run_pairs(worker, candidate, store.get_trial(sid, best_id), cfg.confirm_runs)
        if runs is None:
            return None
        keep, decision, summary = _decide(runs, margin, cfg.lower_is_better, cfg.confirm_level, best_id)
        return store.finish_confirmation(sid, candidate.exp_id, keep=keep, decision=decision, summary=summary,
                                         worker=worker.id)
    except LineageError as e:  # cancelled (a deadline) or decided elsewhere meanwhile
        log.info("confirmation of exp %s ended early: %s", candidate.exp_id, e)
        return store.get_trial(sid, candidate.exp_id)


def _run_pairs(worker: LineageWorker, candidate: Trial, best: Trial, k: int) -> list[ConfirmationRun] | None:
    """Every run of the interleaved plan, recorded ones reused; None if cancelled meanwhile."""
    store, sid = worker.store, worker.search_id
    done = {r.idx: r for r in store.confirmation_runs(sid, candidate.exp_id) if r.ref_exp == best.exp_id}
    cancel = worker.watch(candidate.exp_id)
    try:
        for idx in range(2 * k):
            if idx in done:
                continue
            if cancel.is_set():
                return None
            arm, source = ("candidate", candidate) if idx % 2 == 0 else ("best", best)
            seed = SEED_BASE + idx // 2
            for _ in range(max(1, worker.max_attempts)):  # a run the infrastructure lost is run again
                outcome = worker._evaluate(source, cancel, seeds=1, seed_offset=seed, smoke=False)
                if not outcome.retry:
                    break
            run = ConfirmationRun(exp_id=candidate.exp_id, ref_exp=best.exp_id, idx=idx, arm=arm, seed=seed,
                                  status=outcome.status, score=outcome.score,
                                  wall_s=outcome.timings.get("total"))
            if outcome.status == "cancelled":
                return None
            store.record_confirmation_run(sid, run)
            done[idx] = run
    finally:
        worker.unwatch(candidate.exp_id)
    return [done[i] for i in range(2 * k)]


def _scored(run: ConfirmationRun) -> bool:
    """A re-run that measured a score: valid, or a gate miss (which keeps its score)."""
    return run.status in ("valid", "disqualified") and run.score is not None


def _decide(runs: list[ConfirmationRun], margin: float, lower_is_better: bool, level: float,
            best_id: int) -> tuple[bool, str, dict[str, Any]]:
    """The verdict on complete pairs; a candidate run that failed confirms nothing."""
    summary: dict[str, Any] = {
        "ref_exp": best_id, "margin": margin, "level": level,
        "runs": [[r.idx, r.arm, r.seed, r.status, r.score, r.wall_s] for r in runs],
        "seconds": sum(r.wall_s or 0.0 for r in runs),
    }
    failed = [r for r in runs if r.arm == "candidate" and not _scored(r)]
    if failed:
        r = failed[0]
        summary["pairs"] = 0
        return False, f"not confirmed: its re-run with seed {r.seed} ended {r.status}", summary
    # a one-seed re-run can miss a gate the trial's seeds passed; its score still pairs, and the
    # misses are counted (a gate is judged on the trial's seeds, its score on the pairs)
    summary["gate_misses"] = sum(r.arm == "candidate" and r.status == "disqualified" for r in runs)
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs), 2) if _scored(runs[i + 1])]
    d = confirm([a.score for a, _ in pairs], [b.score for _, b in pairs], margin, lower_is_better, level,  # type: ignore[misc]
                best_exp=best_id)
    summary.update(pairs=d.pairs, mean=d.mean, lower=d.lower)
    return d.keep, d.decision, summary
