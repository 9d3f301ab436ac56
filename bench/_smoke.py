"""What the GPU smoke benches share: the device to use, one evaluation of a prepared task's
starting recipe in real sandboxes on it, and the per-phase table they print."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import Sandbox, SandboxConfig
from evaluator_service.slots import Lease, detect_devices
from tasks.base import Task

PhaseRow = tuple[str, str, float | None, object, object]  # phase, status, wall s, peak GPU MiB, peak RSS MiB


def devices_or_exit(device: str | None, cpu: bool) -> list[str]:
    """The one GPU to run on (`--device`, else the first found); none with `--cpu`."""
    if cpu:
        return []
    devices = [device] if device else detect_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not devices:
        sys.exit("no GPU found (nvidia-smi -L lists none); this bench needs one, or --cpu for a dry run")
    return devices[:1]


def evaluate_starting_recipe(task: Task, profile: str, devices: list[str], tmp: Path, seeds: int = 1) -> Outcome:
    """The task's starting recipe through the real evaluator on `devices`, under `tmp`."""
    sandbox = Sandbox(SandboxConfig(workdir=tmp / "evaluator"))
    try:
        spec = TrialSpec(task=task.name, profile=profile, tree=task.recipe_dir(), seeds=seeds, gpus=len(devices))
        return evaluate(task, spec, sandbox=sandbox, data_dirs=prepare_data(task, tmp / "data"),
                        lease=Lease(slots=(0,), devices=tuple(devices), threads=os.cpu_count() or 1),
                        progress=lambda msg: print(f"  … {msg}", flush=True))
    finally:
        sandbox.close()


def prepared(t0: float, devices: list[str]) -> None:
    print(f"prepared a synthetic task root in {time.monotonic() - t0:.1f} s; GPU {devices or 'none'}", flush=True)


def print_phases(rows: list[PhaseRow]) -> None:
    """The table: phase, status, wall seconds, peak GPU and host memory (MiB)."""
    print(f"{'phase':<7} {'status':<22} {'wall s':>8} {'GPU MiB':>8} {'RSS MiB':>8}")
    for phase, status, wall, gpu, rss in rows:
        print(f"{phase:<7} {status:<22} {wall if wall is not None else float('nan'):>8.1f} "
              f"{gpu if gpu is not None else '-':>8} {rss if rss is not None else '-':>8}")


def print_ran_on(out: Outcome) -> None:
    env = out.metrics.get("env", {}) if isinstance(out.metrics.get("env"), dict) else {}
    print("ran on: " + ", ".join(f"{k}={v}" for k, v in env.items() if not k.startswith("peak")))


def failed(out: Outcome, ok: tuple[str, ...] = ("valid",)) -> bool:
    """Whether the trial's status is outside `ok`; then its log tail is printed."""
    if out.status in ok:
        return False
    print(out.log_tail[-3000:])
    return True
