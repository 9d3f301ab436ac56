"""`SlurmBackend`: each trial is one SLURM job, submitted through submitit.

On the node the job runs the same sandboxed evaluation `LocalBackend` runs
(`evaluate(task, spec, sandbox=..., data_dirs=prepare_data(...), lease=...)`); the job process
is the harness, like LocalBackend's worker thread, and nothing of the trial runs outside the
sandbox. The job's lease holds the GPUs SLURM allocated to it (its gres: `SLURM_JOB_GPUS`,
else `CUDA_VISIBLE_DEVICES`) and CPU slot 0 of a sandbox of its own, whose trial uid is
claimed host-wide (`_uids`), so jobs that share a node never share a uid.

- Requests: `spec.gpus` (else `task.resources.gpus`) GPUs as `--gres=gpu:N` (0: a CPU job),
  `--time` = the trial's phase budgets (per seed where a phase runs per seed) plus
  `time_margin_s`, rounded up to whole minutes, and submitit's `--signal=USR2@D` with D well
  below the limit (submitit's default of 90 s on a 1-minute job fires at once). The job ignores
  USR2 (submitit would end the job itself as "timed-out"); SLURM's own limit ends it. Anything
  in `extra` is passed to sbatch as is and wins over the computed values (`{"time": "1"}`).
- At most `max_jobs` (= `capacity`) jobs are in SLURM at once; the rest wait here, first come,
  first served, so a job's state `queued` means "not yet submitted or pending in SLURM".
- States come from `sacct` (slurmdbd is required, as for submitit), polled every `poll_s` for
  all jobs in flight in one call. A job's `started_at` is SLURM's own start time (`Start`, in
  epoch seconds), so a job that starts and ends between two polls has the time it started,
  not the poll's. Terminal states:
  COMPLETED/FAILED with a result -> the evaluator's outcome;
  CANCELLED after our `cancel` -> `cancelled`;
  TIMEOUT, PREEMPTED, NODE_FAIL, BOOT_FAIL, OUT_OF_MEMORY, DEADLINE, a `scancel` we did not
  issue, or an end without a result -> `infra_error`, `retry=True`,
  "slurm job N ended STATE".
- Budget times stay the evaluator's own measurement; SLURM's `ElapsedRaw` (slurmctld's clock)
  goes beside them as `timings["slurm_elapsed"]`.
- The node must see the same paths as the submitter: `workdir`, `data_root`, the spec's tree
  and the interpreter (a shared filesystem on a real cluster). Clients find the cluster the usual
  way (`SLURM_CONF`, else the default slurm.conf); the job inherits the submitter's environment
  (sbatch's default), but trials never see it: the sandbox starts from an allow-list.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from evaluator_service._slurm_job import run_on_node
from evaluator_service._jobtable import Job, JobTable, TableReads
from evaluator_service.base import BackendConfig
from evaluator_service.local import _registry_task
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import SandboxConfig
from tasks.base import Task

log = logging.getLogger(__name__)

LOST_STATES = frozenset({"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE",
                         "REVOKED"})
DONE_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", *LOST_STATES})
RESULT_WAIT_S = 10.0  # a finished job's result file may show up late on a network filesystem
VANISHED_S = 120.0  # a submitted job sacct never lists is lost


class SlurmBackendConfig(BackendConfig):
    """Where the SLURM backend works and what each job asks SLURM for."""

    partition: str | None = Field(None, description="sbatch --partition; None: the cluster's default")
    max_jobs: int = Field(4, ge=1, description="jobs in SLURM at once (the backend's capacity)")
    time_margin_s: float = Field(300.0, ge=0, description="added to the trial's phase budgets for --time")
    signal_delay_s: int = Field(30, ge=1, description="submitit's USR2 lead before the limit (capped at a quarter of it)")
    extra: dict[str, str] = Field(default_factory=dict, description="more sbatch parameters (name -> value), "
                                  "e.g. {'account': 'ml', 'time': '30'}; they win over the computed ones")
    poll_s: float = Field(0.5, gt=0, description="how often sacct is asked about the jobs in flight")


@dataclass
class _Job(Job):
    slurm_id: str | None = None
    slurm_state: str = ""
    sent_at: float | None = None
    devices: tuple[str, ...] = ()
    cancel_requested: bool = False
    result_wait_since: float | None = None

    def placement(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        return self.devices, (0,) if self.started_at is not None else ()


def trial_time_s(task: Task, spec: TrialSpec) -> float:
    """The longest a trial may take by its budgets: each phase's budget (per seed for per-seed
    main phases; CPU budgets at their wall backstop) plus the scorer's or the eval's budget."""
    limits = task.limits
    budgets = limits.phase_budgets_s
    factor = limits.wall_backstop if limits.budget_clock == "cpu" else 1.0
    seeds = spec.seeds or task.run_plan.seeds
    total = 0.0
    for phase in task.run_plan.phases:
        if phase.kind == "smoke" and not spec.smoke:
            continue
        n = seeds if phase.kind == "main" and phase.per_seed else 1
        total += float(budgets.get(phase.name, 0.0)) * factor * n
    score = float(budgets.get("score", budgets.get("eval", 600.0)))
    total += score * (seeds if task.run_plan.interactive_eval is not None else 1)
    return total


class SlurmBackend(TableReads):
    """A `Backend` over SLURM. See the module docstring."""

    config_class = SlurmBackendConfig  # what a search's --backend-option KEY=VALUE fill in

    def __init__(self, config: SlurmBackendConfig, *, tasks: Callable[[str, str], Task] = _registry_task,
                 sandbox: SandboxConfig | None = None) -> None:
        import submitit  # the optional engine is imported where it is used

        self.config = config
        self.tasks = tasks
        self.sandbox_config = sandbox or SandboxConfig(workdir=config.workdir, unisolated=config.unisolated)
        self.folder = config.workdir / "slurm"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._executor = submitit.SlurmExecutor(folder=self.folder / "%j", max_num_timeout=0)
        self._table: JobTable[_Job] = JobTable()
        self._queue: list[_Job] = []
        self._lock = self._table.lock
        self._wake = threading.Event()
        self._closing = False
        self._ids = 0
        self._thread = threading.Thread(target=self._pump, name="slurm-backend", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ Backend protocol
    @property
    def capacity(self) -> int:
        """See `Backend.capacity`: the jobs this backend keeps in SLURM at once."""
        return self.config.max_jobs

    def submit(self, spec: TrialSpec) -> str:
        """See `Backend.submit`."""
        with self._lock:
            self._ids += 1
            job = _Job(id=f"{os.urandom(4).hex()}-{self._ids}", spec=spec)
            self._table.insert(job)
            self._queue.append(job)
        self._wake.set()
        return job.id

    def cancel(self, job_id: str) -> bool:
        """See `Backend.cancel`: a job not yet in SLURM ends here; one in SLURM is scancelled."""
        with self._lock:
            job = self._table.job(job_id)
            if job.done.is_set() or job.cancel_requested:
                return not job.done.is_set()
            job.cancel_requested = True
            if job.slurm_id is None:
                self._queue.remove(job)
                self._table.finish(job, Outcome(status="cancelled", failure="cancelled before it started"))
                return True
            if job.slurm_id == "?":
                return True  # being submitted: the pump scancels it once it has an id
            slurm_id = job.slurm_id
        self._scancel(slurm_id)
        self._wake.set()
        return True

    def slurm_id(self, job_id: str) -> str | None:
        """The SLURM job id of a job (None before it was submitted, or if it never was)."""
        with self._lock:
            sid = self._table.job(job_id).slurm_id
        return None if sid == "?" else sid

    def close(self) -> None:
        """See `Backend.close`: cancel what is queued or in SLURM, wait (30 s at most) for SLURM
        to end it, and stop."""
        pending = self._table.jobs(lambda j: not j.done.is_set())
        for job in pending:
            self.cancel(job.id)
        deadline = time.monotonic() + 30
        for job in pending:
            job.done.wait(max(0.0, deadline - time.monotonic()))
        self._closing = True
        self._wake.set()
        self._thread.join(10)

    # ------------------------------------------------------------------ internals
    def _scancel(self, slurm_id: str) -> None:
        subprocess.run(["scancel", slurm_id], capture_output=True, timeout=60, check=False)

    def _pump(self) -> None:
        """Submit what fits, then poll sacct for what is in flight; until `close`."""
        while not self._closing:
            try:
                self._dispatch()
                self._poll()
            except Exception:  # noqa: BLE001 - keep pumping; a sacct hiccup is retried next round
                log.exception("slurm backend round failed")
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    def _in_flight(self) -> list[_Job]:
        return [j for j in self._table.held() if j.slurm_id is not None and not j.done.is_set()]

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if not self._queue or len(self._in_flight()) >= self.config.max_jobs or self._closing:
                    return
                job = self._queue.pop(0)
                job.slurm_id = "?"  # counted in flight while sbatch runs
            slurm_id, outcome = self._sbatch(job)
            with self._lock:
                job.slurm_id = slurm_id
                job.sent_at = time.time()
                if outcome is not None:
                    self._table.finish(job, outcome)
                    continue
                cancel = job.cancel_requested
            if cancel:
                self._scancel(slurm_id)

    def _sbatch(self, job: _Job) -> tuple[str | None, Outcome | None]:
        """Submit one job: its SLURM id, or an outcome when it could not be submitted."""
        spec = job.spec
        try:
            task = self.tasks(spec.task, spec.profile)
            gpus = spec.gpus if spec.gpus is not None else task.resources.gpus
            limit_s = trial_time_s(task, spec) + self.config.time_margin_s
        except Exception as e:  # noqa: BLE001 - boundary: a bad request is that job's outcome
            return None, Outcome(status="infra_error", failure=f"{type(e).__name__}: {e}")
        minutes = max(1, math.ceil(limit_s / 60))
        params: dict[str, Any] = {
            "time": minutes, "signal_delay_s": max(1, min(self.config.signal_delay_s, minutes * 60 // 4)),
            "job_name": f"ar-{spec.task}{'' if spec.exp_id is None else f'-exp{spec.exp_id}'}"[:60], "stderr_to_stdout": True, "use_srun": False,
            "nodes": 1, "ntasks_per_node": 1, "additional_parameters": dict(self.config.extra),
        }
        if gpus:
            params["gres"] = f"gpu:{gpus}"
        if self.config.partition:
            params["partition"] = self.config.partition
        try:
            self._executor.update_parameters(**params)
            sjob = self._executor.submit(run_on_node, task, spec, self.sandbox_config,
                                         self.config.data_root, str(self.folder), gpus)
        except Exception as e:  # noqa: BLE001 - sbatch refused or failed: the infrastructure's fault
            return None, Outcome(status="infra_error", retry=True,
                                 failure=f"could not submit to slurm: {type(e).__name__}: {str(e)[-200:]}")
        return str(sjob.job_id), None

    def _poll(self) -> None:
        with self._lock:
            flying = {j.slurm_id: j for j in self._in_flight() if j.slurm_id not in (None, "?")}
        if not flying:
            return
        rows = _sacct(list(flying))
        if rows is None:
            return  # sacct failed (slurmdbd away?): ask again next round
        now = time.time()
        for sid, job in flying.items():
            row = rows.get(sid)
            if row is None:
                if job.sent_at is not None and now - job.sent_at > VANISHED_S:
                    self._end(job, Outcome(status="infra_error", retry=True,
                                           failure=f"slurm job {sid} vanished (sacct does not list it)"))
                continue
            state = row["State"].split()[0] if row["State"] else ""
            started = _epoch(row.get("Start", ""))
            with self._lock:
                job.slurm_state = state
                # a job SLURM ended ran if it spent time, or completed or failed (under a second
                # reads ElapsedRaw 0); one cancelled while pending did not, whatever its Start says
                ran = state == "RUNNING" or (state in DONE_STATES and (
                    row.get("ElapsedRaw", "0") not in ("", "0") or state in ("COMPLETED", "FAILED")))
                if ran and job.started_at is None:
                    job.started_at = started if started is not None else now
                if ran and job.state == "queued":
                    job.state = "running"
                if not job.devices:
                    job.devices = _node_devices(self.folder, sid)
            if state in DONE_STATES:
                outcome = self._outcome(job, sid, state, row)
                if outcome is not None:
                    self._end(job, outcome)

    def _end(self, job: _Job, outcome: Outcome) -> None:
        with self._lock:
            if not job.done.is_set():
                self._table.finish(job, outcome)

    def _outcome(self, job: _Job, sid: str, state: str, row: dict[str, str]) -> Outcome | None:
        """The outcome of a job SLURM ended; None while its result file is still awaited."""
        elapsed = {"slurm_elapsed": float(row["ElapsedRaw"])} if row.get("ElapsedRaw", "").isdigit() else {}
        if state == "CANCELLED" and job.cancel_requested:
            return Outcome(status="cancelled", failure=f"cancelled (slurm job {sid})", timings=elapsed)
        lost = Outcome(status="infra_error", retry=True, failure=f"slurm job {sid} ended {state}", timings=elapsed)
        if state not in ("COMPLETED", "FAILED"):
            return lost
        result = self.folder / sid / f"{sid}_0_result.pkl"
        if not result.exists():
            if job.result_wait_since is None:
                job.result_wait_since = time.monotonic()
            if time.monotonic() - job.result_wait_since < RESULT_WAIT_S:
                return None
            return lost.model_copy(update={"failure": f"slurm job {sid} ended {state} without a result"})
        from submitit.core.utils import pickle_load

        try:
            kind, value = pickle_load(result)
        except Exception as e:  # noqa: BLE001 - a torn or unreadable result is a lost run
            return lost.model_copy(update={"failure": f"slurm job {sid}: unreadable result ({type(e).__name__})"})
        if kind != "success":
            last = str(value).strip().splitlines()[-1:] or [""]
            return Outcome(status="infra_error", failure=f"slurm job {sid}: the harness raised: {last[0][:200]}",
                           log_tail=str(value)[-2000:], timings=elapsed)
        outcome, devices = value
        with self._lock:
            job.devices = tuple(devices)
        if job.cancel_requested and outcome.status != "cancelled":
            outcome = outcome.model_copy(update={"status": "cancelled", "failure": "cancelled while running"})
        return outcome.model_copy(update={"timings": {**outcome.timings, **elapsed}})


def _sacct(ids: list[str]) -> dict[str, dict[str, str]] | None:
    """JobIDRaw -> {State, ElapsedRaw, Start} for these jobs' allocations (Start in epoch
    seconds, whatever the cluster's time zone); None when sacct failed."""
    fields = ["JobIDRaw", "State", "ElapsedRaw", "Start"]
    r = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", ",".join(fields)],
                       capture_output=True, text=True, timeout=60, check=False,
                       env={**os.environ, "SLURM_TIME_FORMAT": "%s"})
    if r.returncode != 0:
        return None
    rows = [dict(zip(fields, line.split("|"))) for line in r.stdout.splitlines() if line.strip()]
    return {row["JobIDRaw"]: row for row in rows}


def _epoch(start: str) -> float | None:
    """sacct's `Start` under SLURM_TIME_FORMAT=%s; None for a job that has not started
    ("Unknown", "None", 0)."""
    return float(start) if start.isdigit() and int(start) > 0 else None


def _node_devices(folder: Path, sid: str) -> tuple[str, ...]:
    try:
        return tuple(json.loads((folder / f"{sid}.node.json").read_text())["devices"])
    except (OSError, ValueError, KeyError):
        return ()
