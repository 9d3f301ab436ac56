"""LLM-free proposers compared on a real task: how much each improves on the baseline.

For each proposer (scripted, Optuna TPE, Optuna random by default) and each repeat, a fresh
search runs `--trials` trials on the task (digits-speedrun by default: CPU seconds under an
accuracy gate) with the given roster, seed = the repeat's index. Every search shares one
baseline, calibrated once by the first, so all keep decisions use the same margin.

The default roster is `generic`, as in the arms study: its agents see every constant and
share one study, with sessions in flight side by side (so TPE's constant liar matters). Under
`roles` each role's study holds only its own trials, about six of 24 on digits, fewer than
TPE's ten random start-up trials: there TPE is random search by construction.

Reported per proposer: the best improvement over the baseline, (baseline - best) / baseline
for a lower-is-better metric, per repeat, its mean with a 95 % t-interval over the repeats,
the trial at which 20 % was first reached, and the trials' statuses. A plot shows every
repeat's best-so-far improvement over trials and each proposer's mean.

usage: python bench/proposers.py [--trials 24] [--repeats 3] [--roster generic]
           [--proposers scripted,optuna:tpe,optuna:random] [--out proposers.png] [--json results.json]

This is a benchmark, not a test: 9 searches of 24 digits trials take about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL = 0.20  # the goal: at least a 20 % improvement in the trial budget


def _search(root: Path, task: str, proposer: str, repeat: int, args: argparse.Namespace,
            baseline: Any) -> dict[str, Any]:
    """One search from scratch; returns its baseline and rows (exp id, status, score)."""
    import uvloop

    from client.run import AgentChoice, run_search
    from client.supervisor import RunLimits
    from lineage.state import StateDir
    from servers.app.init import init_search

    state = root / f"{proposer.replace(':', '-')}-{repeat}"
    init_search(task, state, roster=args.roster, baseline=baseline)
    limits = RunLimits(trials=args.trials, stagger_s=0.5, backoff_s=1.0, pause_after=2)
    started = time.monotonic()
    progress = uvloop.run(run_search(state, AgentChoice.parse(proposer), limits, seed=repeat))
    sd = StateDir.open(state)
    try:
        s = sd.search
        rows = [{"exp_id": t.exp_id, "status": t.status.value, "score": t.score, "specialist": t.specialist,
                 "hypothesis": t.hypothesis} for t in sd.store.list_trials(sd.search_id, include_baseline=False)]
        return {"proposer": proposer, "repeat": repeat, "baseline": s.baseline_score, "spread": s.baseline_spread,
                "baseline_n": s.baseline_n, "lower_is_better": s.config.lower_is_better, "rows": rows,
                "wall_s": time.monotonic() - started, "stop": progress.stop_reason}
    finally:
        sd.close()


def curve(run: dict[str, Any]) -> list[float]:
    """Best-so-far improvement over the baseline after each trial (kept trials only: the search's best)."""
    base, sign = run["baseline"], 1.0 if run["lower_is_better"] else -1.0
    best, out = base, []
    for r in sorted(run["rows"], key=lambda r: r["exp_id"]):
        if r["status"] == "keep" and r["score"] is not None and sign * (r["score"] - best) < 0:
            best = r["score"]
        out.append(sign * (base - best) / abs(base))
    return out


def interval(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its t-interval over repeats (the interval is the mean when there is one repeat)."""
    from scipy import stats

    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, m, m
    half = stats.t.ppf(0.5 + level / 2, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - half, m + half


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["proposer"] for r in runs):
        mine = [r for r in runs if r["proposer"] == name]
        finals = [curve(r)[-1] if r["rows"] else 0.0 for r in mine]
        reached = [next((i + 1 for i, v in enumerate(curve(r)) if v >= GOAL), None) for r in mine]
        statuses = Counter(row["status"] for r in mine for row in r["rows"])
        mean, lo, hi = interval(finals)
        out[name] = {"finals": finals, "mean": mean, "lo": lo, "hi": hi, "reached_goal_at": reached,
                     "statuses": dict(statuses), "wall_s": sum(r["wall_s"] for r in mine)}
    return out


def print_tables(runs: list[dict[str, Any]], summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    b = runs[0]
    console.print(f"task {args.task}, roster {args.roster}, {len(b['rows'])} trials x "
                  f"{max(len(s['finals']) for s in summary.values())} repeats per proposer; "
                  f"baseline {b['baseline']:.3f} (spread {b['spread'] or 0:.3f}, n={b['baseline_n']})")
    per = Table(title="best improvement over the baseline, per repeat")
    per.add_column("proposer")
    for i in range(max(len(s["finals"]) for s in summary.values())):
        per.add_column(f"seed {i}", justify="right")
    per.add_column("trial reaching 20 %", justify="right")
    for name, s in summary.items():
        reached = ", ".join("-" if x is None else str(x) for x in s["reached_goal_at"])
        per.add_row(name, *(f"{v:.1%}" for v in s["finals"]), reached)
    console.print(per)
    agg = Table(title="mean best improvement with a 95 % t-interval over the repeats")
    for col in ("proposer", "mean", "95 % interval", ">= 20 % in", "statuses (all repeats)", "wall"):
        agg.add_column(col, justify="left" if col in ("proposer", "statuses (all repeats)") else "right")
    for name, s in summary.items():
        hits = sum(v >= GOAL for v in s["finals"])
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))
        agg.add_row(name, f"{s['mean']:.1%}", f"[{s['lo']:.1%}, {s['hi']:.1%}]", f"{hits}/{len(s['finals'])}",
                    statuses, f"{s['wall_s'] / 60:.0f} min")
    console.print(agg)


def plot(runs: list[dict[str, Any]], summary: dict[str, dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    try:
        for i, name in enumerate(summary):
            color = f"C{i}"
            curves = [curve(r) for r in runs if r["proposer"] == name and r["rows"]]
            for c in curves:
                ax.step(range(1, len(c) + 1), [100 * v for v in c], where="post", color=color, alpha=0.3, linewidth=1)
            n = min(len(c) for c in curves) if curves else 0
            mean = [100 * statistics.fmean(c[k] for c in curves) for k in range(n)]
            ax.step(range(1, n + 1), mean, where="post", color=color, linewidth=2.2,
                    label=f"{name} (final {summary[name]['mean']:.0%})")
        ax.axhline(100 * GOAL, color="grey", linestyle="--", linewidth=1, label="goal: 20 %")
        ax.set_title(f"{args.task}, roster {args.roster}: best-so-far improvement over the baseline")
        ax.set_xlabel("trial")
        ax.set_ylabel("improvement over the baseline (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _shared_baseline(run: dict[str, Any]) -> Any:
    from servers.app.init import Baseline

    return Baseline(score=run["baseline"], spread=run["spread"], n=run["baseline_n"],
                    note="shared by the benchmark's searches (calibrated by its first)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="digits-speedrun")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--roster", default="generic", choices=("roles", "generic", "single"))
    ap.add_argument("--proposers", default="scripted,optuna:tpe,optuna:random")
    ap.add_argument("--out", type=Path, default=Path("proposers.png"), help="the plot of best-so-far curves")
    ap.add_argument("--json", type=Path, default=None, help="also write every search's rows here")
    ap.add_argument("--replot", type=Path, default=None, help="only redraw tables and plot from a --json file")
    args = ap.parse_args()
    if args.replot:
        runs = json.loads(args.replot.read_text())
    else:
        runs = []
        baseline = None
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for proposer in args.proposers.split(","):
                    runs.append(_search(Path(tmp), args.task, proposer, repeat, args, baseline))
                    baseline = baseline or _shared_baseline(runs[0])
                    print(f"{proposer} seed {repeat}: best {curve(runs[-1])[-1] if runs[-1]['rows'] else 0:.1%} "
                          f"in {runs[-1]['wall_s']:.0f} s ({runs[-1]['stop']})", flush=True)
                    if args.json:
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(runs, indent=1))
    summary = summarise(runs)
    print_tables(runs, summary, args)
    plot(runs, summary, args.out, args)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
