"""The SLURM job of `SlurmBackend` (evaluator_service/slurm.py): what runs on the node.

`run_on_node` is the job's function (submitit pickles a reference to it): the same sandboxed
evaluation `LocalBackend` runs, on the GPUs SLURM allocated to the job, as the harness; the
trial itself runs only inside the sandbox.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
from pathlib import Path

from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import Sandbox, SandboxConfig
from evaluator_service.slots import Lease
from tasks.base import Task


def allocated_gpus() -> tuple[str, ...]:
    """The GPUs SLURM gave this job (gres): SLURM_JOB_GPUS, else CUDA_VISIBLE_DEVICES."""
    for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var, "")
        ids = tuple(d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1")
        if ids:
            return ids
    return ()


def run_on_node(task: Task, spec: TrialSpec, sandbox_config: SandboxConfig, data_root: Path,
                folder: str, gpus: int) -> tuple[Outcome, tuple[str, ...]]:
    """The SLURM job: the sandboxed evaluation of one trial on the GPUs SLURM allocated.

    SIGTERM (scancel, the time limit) stops the trial through the evaluator's cancel; USR2
    (submitit's warning before the limit) is ignored, so SLURM's own limit ends the job.
    """
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    devices = allocated_gpus() if gpus else ()
    sid = os.environ.get("SLURM_JOB_ID", "")
    if sid:
        note = Path(folder) / f"{sid}.node.json"
        note.write_text(json.dumps({"devices": list(devices), "host": os.uname().nodename}))
    sandbox = Sandbox(sandbox_config)
    lease = Lease(slots=(0,), devices=devices, threads=int(os.environ.get("SLURM_CPUS_ON_NODE", "0") or 0)
                  or os.cpu_count() or 1)
    try:
        root = Path(data_root)
        root.mkdir(parents=True, exist_ok=True)
        # jobs of one task prepare its data in turn (a lock of their own: a task's preparation may
        # lock `.<task>.lock` itself, and a second flock of it from this process would wait forever)
        with open(root / f".{task.name}.job.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = prepare_data(task, root / task.name)
        outcome = evaluate(task, spec, sandbox=sandbox, data_dirs=data, lease=lease, cancel=cancel)
    finally:
        sandbox.sweep(lease.slots)  # nothing of the slot's uid outlives the trial
        sandbox.close()
    return outcome, devices
