"""What the slurm backend adds to a trial: harness overhead and SLURM's scheduling latency.

Starts a real single-node SLURM cluster the way the tests do (tests/slurm/cluster.py: munged,
MariaDB + slurmdbd, slurmctld, slurmd, 4 fake GPUs; needs root and the Debian packages), runs
N short toy trials one after another through `SlurmBackend` (each a SLURM job running the
sandboxed evaluation), stops the cluster, and prints per trial and as p50/max:

- e2e: submit() -> wait() returned, on the caller's clock;
- eval: the evaluation's own run time on the node (`timings["total"]`);
- overhead: e2e - eval, all the backend and SLURM add (sbatch, scheduling, job start-up and
  Python imports, data preparation, result file, sacct polling);
- beyond SLURM: e2e - ElapsedRaw (what is spent outside SLURM's own run clock; 1 s resolution);
- sched: sacct Start - Submit (SLURM's own scheduling latency; 1 s resolution).

    .venv/bin/python bench/slurm_overhead.py [--trials 10] [--gpus 0] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator_service.models import TrialSpec  # noqa: E402
from evaluator_service.sandbox import SandboxConfig  # noqa: E402
from evaluator_service.slurm import SlurmBackend, SlurmBackendConfig  # noqa: E402
from tests.evaluator_service.toytask import ToyTask  # noqa: E402
from tests.slurm import cluster as slurm_cluster  # noqa: E402

UID_BASE = 63000  # clear of a search's trial uids (60000...) and the tests' (62000...)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _p(values: list[float]) -> str:
    return f"p50 {statistics.median(values):6.2f} s   max {max(values):6.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--gpus", type=int, default=0, help="fake GPUs per trial (gres)")
    ap.add_argument("--poll", type=float, default=0.5, help="the backend's sacct poll interval (poll_s)")
    args = ap.parse_args()
    if os.geteuid() != 0 or slurm_cluster.missing():
        sys.exit(f"needs root and: apt-get install {slurm_cluster.PACKAGES} (missing: {slurm_cluster.missing()})")

    tmp = Path(tempfile.mkdtemp(prefix="ar-slurm-bench-"))
    os.chmod(tmp, 0o755)  # the cluster's daemons (munge, mysql users) traverse it
    t0 = time.monotonic()
    cluster = backend = None
    try:
        cluster = slurm_cluster.start(tmp / "cluster", ngpus=4)
        print(f"cluster up in {time.monotonic() - t0:.1f} s ({cluster.cpus} CPUs declared, 4 fake GPUs)")
        os.environ.update(cluster.env)
        task = ToyTask(tmp / "toy", name="toy", budgets={"train": 20.0}, gpus=args.gpus)
        config = SlurmBackendConfig(workdir=tmp / "work", data_root=tmp / "data", max_jobs=1, poll_s=args.poll)
        backend = SlurmBackend(config, tasks=lambda _n, _p="": task,
                               sandbox=SandboxConfig(workdir=tmp / "work", uid_base=UID_BASE))
        rows = []
        print(f"{'trial':>5} {'slurm id':>8} {'status':>7} {'e2e':>6} {'eval':>6} {'overhead':>8} "
              f"{'elapsed':>7} {'sched':>5}")
        for i in range(args.trials):
            start = time.monotonic()
            job = backend.submit(TrialSpec(task="toy", tree=task.recipe_dir()))
            outcome = backend.wait(job, timeout=300)
            e2e = time.monotonic() - start
            sid = backend.slurm_id(job)
            acct = cluster.sacct([sid])[0]
            sched = _epoch(acct["Start"]) - _epoch(acct["Submit"])
            row = {"e2e": e2e, "eval": outcome.timings["total"], "elapsed": outcome.timings["slurm_elapsed"],
                   "sched": sched, "status": outcome.status}
            row["overhead"] = e2e - row["eval"]
            row["beyond"] = e2e - row["elapsed"]
            rows.append(row)
            print(f"{i:>5} {sid:>8} {outcome.status:>7} {e2e:6.2f} {row['eval']:6.2f} {row['overhead']:8.2f} "
                  f"{row['elapsed']:7.0f} {sched:5.0f}")
        ok = [r for r in rows if r["status"] == "valid"]
        print(f"\n{len(ok)}/{len(rows)} valid; sacct poll every {args.poll} s; {args.gpus} GPU(s) per trial")
        for key, label in (("e2e", "submit -> outcome"), ("eval", "evaluation on the node"),
                           ("overhead", "overhead (e2e - eval)"), ("beyond", "e2e - SLURM ElapsedRaw"),
                           ("sched", "SLURM Submit -> Start")):
            print(f"{label:>24}: {_p([r[key] for r in rows])}")
    finally:
        if backend is not None:
            backend.close()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
