"""CPU time versus wall time of one recipe, on an idle machine and beside a CPU hog.

    python bench/cpu_clock_noise.py [--task digits-speedrun] [--runs 3] [--seeds 3] [--hogs 2]

Evaluates the task's unmodified starting recipe `--runs` times with the machine idle, then
`--runs` times while `--hogs` processes spin on the CPU (one per core by default), each time
in real sandboxes through `evaluate()`. It prints, per condition, the score (mean over runs of
the per-trial mean over seeds, ± the spread between runs) on both clocks, and the shift under
load. The point of scoring a CPU task by CPU time: wall time follows the machine's load, CPU
time follows the recipe.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import TrialSpec
from evaluator_service.sandbox import Sandbox, SandboxConfig
from tasks.registry import get_task


def _spin() -> None:
    while True:
        pass


def _measure(task, data, sandbox, runs: int, seeds: int, phase: str) -> tuple[list[float], list[float]]:
    """Per-run mean wall and CPU seconds of `phase` over the seeds."""
    walls, cpus = [], []
    for i in range(runs):
        out = evaluate(task, TrialSpec(task=task.name, tree=task.recipe_dir(), seeds=seeds, seed_offset=100 * i),
                       sandbox=sandbox, data_dirs=data)
        if out.status != "valid":
            raise SystemExit(f"baseline run {i} was {out.status}: {out.failure}")
        walls.append(out.timings[phase])
        cpus.append(out.timings[f"{phase}_cpu"])
    return walls, cpus


def _fmt(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):.2f} ± {sd:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="digits-speedrun")
    ap.add_argument("--phase", default="train")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hogs", type=int, default=multiprocessing.cpu_count())
    args = ap.parse_args()
    task = get_task(args.task)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ar-clock-") as tmp:
        root = Path(tmp)
        sandbox = Sandbox(SandboxConfig(workdir=root / "evaluator"))
        data = prepare_data(task, root / "data")
        with console.status("idle runs"):
            idle = _measure(task, data, sandbox, args.runs, args.seeds, args.phase)
        hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
        for h in hogs:
            h.start()
        try:
            with console.status(f"runs beside {args.hogs} CPU hog(s)"):
                loaded = _measure(task, data, sandbox, args.runs, args.seeds, args.phase)
        finally:
            for h in hogs:
                h.kill()
                h.join()
        sandbox.close()
    table = Table(title=f"{args.task}: {args.phase} seconds per seed, {args.runs} runs × {args.seeds} seeds")
    for col in ("clock", "idle", f"beside {args.hogs} hog(s)", "shift"):
        table.add_column(col)
    for name, i in (("wall", 0), ("cpu", 1)):
        shift = statistics.fmean(loaded[i]) / statistics.fmean(idle[i]) - 1
        table.add_row(name, _fmt(idle[i]), _fmt(loaded[i]), f"{shift:+.1%}")
    console.print(table)


if __name__ == "__main__":
    main()
