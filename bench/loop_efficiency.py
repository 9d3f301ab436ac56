"""Loop efficiency of the supervisor with the scripted agent, and its per-trial overhead.

    eta = (trials per hour with K specialists) / (K x trials per hour with one)

measured on a K-slot pool with trials of fixed length (the test task `quicktask`, whose
recipe sleeps a fixed time), each arm run for the same wall time. Overhead: for each
specialist, the time from one of its trials finishing to its next trial being submitted,
and to that trial starting to run (claimed by the evaluator).

usage: python bench/loop_efficiency.py [--k 8] [--trial-s 5] [--window-s 90]

Rates come from each specialist's mean trial-to-trial time in a steady window.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _arm(root: Path, k: int, window_s: float, trial_s: float) -> dict[str, float]:
    import uvloop

    from client.run import AgentChoice, run_search
    from client.supervisor import RunLimits
    from lineage.state import StateDir
    from servers.app.init import Baseline, init_search

    state = root / f"k{k}"
    init_search("tests.client.quicktask.task:TASK", state, roster="generic", agents=k,
                baseline=Baseline(score=19.0))
    limits = RunLimits(deadline_s=window_s, stagger_s=0, grace_s=trial_s * 4, poll_s=0.2)
    uvloop.run(run_search(state, AgentChoice.parse("scripted"), limits, slots=k, seed=11))
    sd = StateDir.open(state)
    rows = [t for t in sd.store.list_trials(sd.search_id, include_baseline=False) if t.finished_at]
    sd.close()
    t0 = min(t.created_at for t in rows)
    lo, hi = trial_s * 2, window_s  # a steady window: after the first trials, before the stop
    cycles, to_submit, to_start = [], [], []
    by_spec: dict[str, list] = {}
    for t in sorted(rows, key=lambda r: r.exp_id):
        by_spec.setdefault(t.specialist, []).append(t)
    for trials in by_spec.values():
        for prev, nxt in zip(trials, trials[1:]):
            if lo <= (prev.finished_at - t0).total_seconds() and (nxt.finished_at - t0).total_seconds() <= hi:
                cycles.append((nxt.finished_at - prev.finished_at).total_seconds())
            to_submit.append((nxt.created_at - prev.finished_at).total_seconds())
            if nxt.started_at:
                to_start.append((nxt.started_at - prev.finished_at).total_seconds())
    cycle = statistics.fmean(cycles)  # one specialist's trial-to-trial time in the steady window
    return {"per_hour": k * 3600 / cycle, "cycle_s": cycle, "trials": len(rows),
            "submit_p50": statistics.median(to_submit), "start_p50": statistics.median(to_start),
            "start_p90": statistics.quantiles(to_start, n=10)[-1] if len(to_start) > 2 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--trial-s", type=float, default=5.0, help="fixed sleep of each trial")
    ap.add_argument("--window-s", type=float, default=90.0, help="wall time of each arm")
    args = ap.parse_args()
    os.environ["AR_QUICKTASK_SLEEP"] = str(args.trial_s)
    with tempfile.TemporaryDirectory() as tmp:
        one = _arm(Path(tmp), 1, args.window_s, args.trial_s)
        many = _arm(Path(tmp), args.k, args.window_s, args.trial_s)
    eta = many["per_hour"] / (args.k * one["per_hour"])
    print(f"trial length {args.trial_s:.1f} s (+ harness), window {args.window_s:.0f} s per arm")
    for name, arm in (("K=1", one), (f"K={args.k}", many)):
        print(f"{name:5s} trials/hour {arm['per_hour']:8.1f}  cycle {arm['cycle_s']:.3f} s  trials {arm['trials']:4.0f}  "
              f"finish->next submit p50 {arm['submit_p50']:.3f} s  finish->next start p50 {arm['start_p50']:.3f} s "
              f"(p90 {arm['start_p90']:.3f} s)")
    print(f"eta = {eta:.3f}  (target >= 0.95 for K = 8)")


if __name__ == "__main__":
    main()
