"""Evaluator overhead per phase: what the harness adds around the recipe's own run time.

    python bench/evaluator_overhead.py [--runs 40]

A one-phase task (a recipe that reads 20 numbers and writes a predictions file, then a
scorer that reads them) is evaluated end to end with `evaluate()` in real sandboxes:
preflight, scratch copy, sandbox setup, runner timing, output collection, cleanup, the scoring
sandbox and finalize. The same two commands are also run directly (`python recipe.py`,
`python score.py`, plain subprocesses in prepared dirs). Overhead per phase is

    (evaluate() wall - direct recipe wall - direct scorer wall) / 2 phases

reported as p50 / p90 over the runs (target: p50 < 150 ms). A second line isolates the
sandbox alone: `Sandbox.run(python -c pass)` against `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import TrialSpec
from evaluator_service.sandbox import RunSpec, Sandbox, SandboxConfig
from tests.evaluator_service.toytask import ToyTask


def pct(xs: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def direct(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of a plain subprocess run."""
    t0 = time.monotonic()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def direct_pair(task: ToyTask, data, root: Path) -> float:
    """Recipe + scorer run directly, in prepared dirs, like the sandbox would run them."""
    scratch, outputs, result = root / "d-scratch", root / "d-out", root / "d-result"
    for d in (scratch, outputs, result):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(task.recipe_dir(), scratch)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AR_DATA": str(data.public), "AR_SEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1"}
    t = direct([sys.executable, "recipe.py"], scratch, env)
    (outputs / "train" / "0").mkdir(parents=True)
    shutil.copy(scratch / "preds.json", outputs / "train" / "0" / "preds.json")
    result.mkdir()
    env.update(AR_HIDDEN=str(data.hidden), AR_OUTPUTS=str(outputs), AR_SEEDS="1",
               AR_RESULT=str(result / "score.json"))
    return t + direct([sys.executable, str(task.scorer_dir() / "score.py")], root, env)


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    try:
        sandbox = Sandbox(SandboxConfig(workdir=root / "work"))
        task = ToyTask(root / "task")
        data = prepare_data(task, root / "data")
        spec = TrialSpec(task=task.name, tree=task.recipe_dir())
        evaluate(task, spec, sandbox=sandbox, data_dirs=data)  # warm caches once
        overheads, walls, directs = [], [], []
        for _ in range(args.runs):
            d = direct_pair(task, data, root)
            t0 = time.monotonic()
            out = evaluate(task, spec, sandbox=sandbox, data_dirs=data)
            wall = time.monotonic() - t0
            assert out.status == "valid", out
            overheads.append((wall - d) / 2)
            walls.append(wall)
            directs.append(d)
        print(f"evaluate() of a 1-phase trial + scorer, {args.runs} runs, load {os.getloadavg()[0]:.2f}")
        print(f"  evaluate wall      p50 {pct(walls, .5) * 1e3:7.1f} ms  p90 {pct(walls, .9) * 1e3:7.1f} ms")
        print(f"  direct recipe+scorer p50 {pct(directs, .5) * 1e3:5.1f} ms  p90 {pct(directs, .9) * 1e3:7.1f} ms")
        print(f"  overhead per phase p50 {pct(overheads, .5) * 1e3:7.1f} ms  p90 {pct(overheads, .9) * 1e3:7.1f} ms"
              f"  (target p50 < 150 ms)")
        sandbox_only(sandbox, root, args.runs)
        sandbox.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sandbox_only(sandbox: Sandbox, root: Path, runs: int) -> None:
    """The sandbox's own cost on `python -c pass`."""
    scratch = root / "s"
    scratch.mkdir()
    sandbox.prepare_dir(scratch, 0)
    argv = [sys.executable, "-c", "pass"]
    sb, dr = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        run = sandbox.run(RunSpec(argv=tuple(argv), scratch=scratch, budget_s=10))
        sb.append(time.monotonic() - t0)
        assert run.ok, run.output
        dr.append(direct(argv, root, {"PATH": "/usr/bin:/bin"}))
    extra = [a - b for a, b in zip(sb, dr)]
    print(f"  sandbox alone: python -c pass p50 {statistics.median(sb) * 1e3:.1f} ms vs direct "
          f"{statistics.median(dr) * 1e3:.1f} ms; added p50 {pct(extra, .5) * 1e3:.1f} ms p90 {pct(extra, .9) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
