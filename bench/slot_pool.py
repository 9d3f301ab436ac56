"""Slot pool utilisation: does a 16-slot local pool keep every slot busy while work is queued?

    python bench/slot_pool.py [--slots 16] [--trials 200] [--real]

200 trials that each sleep 0.2-0.5 s (seeded) are submitted at once to a `LocalBackend` over
16 simulated CPU slots. By default a trial is the run function `sleep` (it exercises the
dispatcher, the FIFO slot pool, the worker threads and the lease hand-off, not the sandbox);
with `--real` each trial is a real sandboxed evaluation of a recipe that sleeps.

Idle fraction = slot-seconds not leased while work was still queued (from the first submit
to the last start) / (slots x that window). Target: under 1%.
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.slots import Lease, SlotPool

SLEEP_RECIPE = """\
import json, os, time
time.sleep(float(os.environ.get("SLEEP_S", "0.3")))
json.dump([x % 2 for x in range(20)], open("preds.json", "w"))
"""


class Recorder:
    """Lease intervals per slot, recorded by the run function itself."""

    def __init__(self) -> None:
        self.intervals: list[tuple[int, float, float]] = []
        self.lock = threading.Lock()

    def add(self, lease: Lease, t0: float, t1: float) -> None:
        """Record that `lease` was in use from t0 to t1."""
        with self.lock:
            self.intervals.extend((s, t0, t1) for s in lease.slots)


def idle_fraction(rec: Recorder, slots: int, t_submit: float) -> tuple[float, float]:
    """Unleased slot time while work was queued, over slots x window."""
    last_start = max(t0 for _, t0, _ in rec.intervals)
    window = last_start - t_submit
    busy = sum(max(0.0, min(t1, last_start) - max(t0, t_submit)) for _, t0, t1 in rec.intervals)
    return 1.0 - busy / (slots * window), window


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--real", action="store_true", help="real sandboxed trials that sleep")
    args = ap.parse_args()
    rng = random.Random(0)
    sleeps = [rng.uniform(0.2, 0.5) for _ in range(args.trials)]
    root = Path(tempfile.mkdtemp(prefix="ar-slots-"))
    rec = Recorder()
    try:
        backend, specs = build(args, root, rec, sleeps)
        t_submit = time.monotonic()
        ids = [backend.submit(s) for s in specs]
        outcomes = [backend.wait(i) for i in ids]
        total = time.monotonic() - t_submit
        backend.close()
        bad = [o.status for o in outcomes if o is None or o.status != "valid"]
        idle, window = idle_fraction(rec, args.slots, t_submit)
        starts = [backend.get(i).started_at for i in ids]
        fifo = all(a <= b for a, b in itertools.pairwise(starts))
        print(f"{args.trials} trials ({'real sandboxes' if args.real else 'simulated'}) on {args.slots} slots: "
              f"{total:.2f} s total, ideal {sum(sleeps) / args.slots:.2f} s; queued window {window:.2f} s")
        print(f"  slot idle while work was queued: {idle * 100:.3f} % (target < 1 %); "
              f"started in submission order: {fifo}; non-valid outcomes: {len(bad)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build(args: argparse.Namespace, root: Path, rec: Recorder, sleeps: list[float]):  # type: ignore[no-untyped-def]
    """The backend and the trial specs for the chosen mode."""
    pool = SlotPool([], cpu_slots=args.slots, cpus=args.slots)
    config = LocalBackendConfig(workdir=root / "work", data_root=root / "data")
    if not args.real:
        def run(spec: TrialSpec, lease: Lease, cancel: threading.Event) -> Outcome:
            t0 = time.monotonic()
            time.sleep(float(spec.label))
            rec.add(lease, t0, time.monotonic())
            return Outcome(status="valid", score=0.0)

        backend = LocalBackend(config, tasks=lambda _n: None, pool=pool, run=run)  # type: ignore[arg-type,return-value]
        return backend, [TrialSpec(task="sleep", tree=root, gpus=0, label=str(s)) for s in sleeps]
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.sandbox import Sandbox, SandboxConfig
    from tests.evaluator_service.toytask import ToyTask

    tasks = {}
    for i, s in enumerate(sleeps):
        t = ToyTask(root / "tasks" / str(i), SLEEP_RECIPE, name=f"sleep-{i}", budgets={"train": 30.0})
        t.run_plan = t.run_plan.model_copy(update={"phases": tuple(
            p.model_copy(update={"env": {"SLEEP_S": f"{s:.3f}"}}) for p in t.run_plan.phases)})
        tasks[t.name] = t
    sandbox = Sandbox(SandboxConfig(workdir=root / "work"))
    data = {name: prepare_data(t, root / "data" / name) for name, t in tasks.items()}

    def run(spec: TrialSpec, lease: Lease, cancel: threading.Event) -> Outcome:
        """The backend's own evaluation, timed at the lease boundary."""
        t0 = time.monotonic()
        out = evaluate(tasks[spec.task], spec, sandbox=sandbox, data_dirs=data[spec.task], lease=lease,
                       cancel=cancel)
        rec.add(lease, t0, time.monotonic())
        return out

    backend = LocalBackend(config, tasks=tasks.__getitem__, pool=pool, sandbox=sandbox, run=run)
    return backend, [TrialSpec(task=t.name, tree=t.recipe_dir()) for t in tasks.values()]


if __name__ == "__main__":
    main()
