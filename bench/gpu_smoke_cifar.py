"""GPU smoke of cifar-airbench96: its `smoke` profile end to end on one GPU, synthetic data.

    python bench/gpu_smoke_cifar.py [--device 0] [--seeds 1] [--upstream PATH]

Builds a task root from a synthetic CIFAR-format tarball (5 x 1,024 training images, so the
real batch of 1,024 and the 5,000-image whitening both fit; 10,000 test images) and the
pinned upstream recipe (`--upstream`, else `../shared/upstream/cifar10-airbench/`; checked
by sha256, never downloaded), through the real `prepare`. Then it evaluates the starting
recipe with the `smoke` profile in real sandboxes on one GPU: every phase is one epoch, and
on CUDA that is the full path's code (half precision, a cold `max-autotune` compile).

Prints per phase: status, wall seconds (mean over seeds), peak GPU and host memory (MiB),
then the trial's status (`disqualified` is expected: one epoch on random images), what it
ran on, and on a failure the summary and the log tail. Exit status 0 when every phase ran.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._smoke import devices_or_exit, evaluate_starting_recipe, failed, prepared, print_phases, print_ran_on
from evaluator_service.models import Outcome
from tasks.registry import with_profile
from tests.tasks.cifar_fixture import PINNED, prepared_root

PHASES = ("smoke", "train", "score")


def _stopped_in(out: Outcome) -> str:
    """The phase a failed trial stopped in, from its failure ("smoke: ...", "train (seed 3): ...")."""
    for phase, prefix in (("smoke", "smoke"), ("train", "train"), ("score", "scorer")):
        if out.failure.startswith(prefix):
            return phase
    return ""  # before any phase (preflight) or after them all (finalize)


def phase_rows(out: Outcome) -> list[tuple[str, str, float | None, object, object]]:
    """(phase, status, wall s, peak GPU MiB, peak RSS MiB) for each phase of the smoke profile."""
    env = out.metrics.get("env") if isinstance(out.metrics.get("env"), dict) else {}
    stopped = "" if out.status in ("valid", "disqualified") else _stopped_in(out)
    rows = []
    for i, phase in enumerate(PHASES):
        if stopped:
            at = PHASES.index(stopped)
            status = "ok" if i < at else out.status if i == at else "not run"
        else:
            status = "ok" if phase in out.timings else "not run"
        rows.append((phase, status, out.timings.get(phase), env.get("peak_gpu_mib", {}).get(phase),
                     env.get("peak_rss_mib", {}).get(phase)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", help="GPU id (default: the first one found)")
    ap.add_argument("--seeds", type=int, default=1, help="main-phase seeds (each a cold compile)")
    ap.add_argument("--upstream", type=Path, default=PINNED, help="the pinned airbench96_faster.py")
    ap.add_argument("--cpu", action="store_true", help="a dry run of this script without a GPU (tiny data)")
    args = ap.parse_args()
    devices = devices_or_exit(args.device, args.cpu)
    if not args.upstream.is_file():
        sys.exit(f"{args.upstream} is missing: pass --upstream PATH to a copy of the pinned airbench96_faster.py")
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-cifar-") as tmp:
        t0 = time.monotonic()
        sizes = {"per_batch": 13, "n_test": 40} if args.cpu else {"per_batch": 1024, "n_test": 10_000}
        task, _ = prepared_root(Path(tmp) / "root", upstream=args.upstream.read_bytes(), **sizes)
        task = with_profile(task, "smoke")
        prepared(t0, devices)
        out = evaluate_starting_recipe(task, "smoke", devices, Path(tmp), seeds=args.seeds)
    return report(out)


def report(out: Outcome) -> int:
    print_phases(phase_rows(out))
    print(f"trial: {out.status} in {out.timings.get('total', 0):.1f} s; {out.failure}")
    print_ran_on(out)
    return 1 if failed(out, ok=("valid", "disqualified")) else 0


if __name__ == "__main__":
    sys.exit(main())
