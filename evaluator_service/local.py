"""`LocalBackend`: trials on this machine, over a pool of GPU (or CPU) slots.

A fixed set of long-lived worker threads (one per slot; sandboxes are launched only from
long-lived threads, since `--die-with-parent` is thread-scoped) share one dispatch lock: the
thread holding it takes the next job in submission order and waits for its slots, then runs
it itself. So the order is strictly first come, first served, a k-GPU job at the head holds
back later ones until k slots are free, and a freed slot is handed over with a single thread
wake-up. A lease is released only after the sandbox was verified dead and the slot's uid swept.

Jobs are kept in a `JobTable` (finished ones until `forget`, and at most `KEEP_FINISHED`).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from evaluator_service._jobtable import Job, JobTable, TableReads
from evaluator_service.base import BackendConfig
from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import Sandbox, SandboxConfig
from evaluator_service.slots import Lease, SlotPool
from tasks.base import DataDirs, Task


class LocalBackendConfig(BackendConfig):
    """Where the local backend works and which slots it has."""

    devices: tuple[str, ...] | None = Field(None, description="GPU ids; None: detect")
    cuda_visible_devices: str | None = Field(None, description="the entry point's CUDA_VISIBLE_DEVICES")
    cpu_slots: int | None = Field(None, description="CPU slots when there is no GPU (default cpus//2)")


@dataclass
class _Job(Job):
    lease: Lease | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def placement(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        return (self.lease.devices, self.lease.slots) if self.lease else ((), ())


RunFn = Callable[[TrialSpec, Lease, threading.Event], Outcome]


def _registry_task(name: str, profile: str = "") -> Task:
    from tasks.registry import get_task

    return get_task(name, profile)


class LocalBackend(TableReads):
    """A `Backend` on this machine. See the module docstring."""

    def __init__(self, config: LocalBackendConfig, *, tasks: Callable[[str, str], Task] = _registry_task,
                 pool: SlotPool | None = None, sandbox: Sandbox | None = None,
                 run: RunFn | None = None) -> None:
        self.config = config
        self.tasks = tasks
        self.pool = pool or (SlotPool(config.devices, cpu_slots=config.cpu_slots) if config.devices is not None
                             else SlotPool.detect(config.cuda_visible_devices, cpu_slots=config.cpu_slots))
        self._own_sandbox = sandbox is None
        self.sandbox = sandbox or Sandbox(SandboxConfig(workdir=config.workdir, unisolated=config.unisolated))
        self._run = run or self._evaluate
        self._table: JobTable[_Job] = JobTable()
        self._lock = self._table.lock
        self._data: dict[str, DataDirs] = {}
        self._data_lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._dispatch_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._worker, name=f"trial-{i}", daemon=True)
                         for i in range(self.pool.size)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ Backend protocol
    @property
    def capacity(self) -> int:
        """See `Backend.capacity`: one job per slot of the pool."""
        return self.pool.size

    def submit(self, spec: TrialSpec) -> str:
        """See `Backend.submit`."""
        job = _Job(id=uuid.uuid4().hex[:12], spec=spec)
        self._table.add(job)
        self._queue.put(job)
        return job.id

    def cancel(self, job_id: str) -> bool:
        """See `Backend.cancel`."""
        with self._lock:
            job = self._table.job(job_id)
            if job.state in ("finished", "cancelled"):
                return False
            job.cancel.set()
            if job.state == "queued":
                self._table.finish(job, Outcome(status="cancelled", failure="cancelled before it started"))
        return True

    def close(self) -> None:
        """See `Backend.close`."""
        for job in self._table.jobs(lambda j: j.state in ("queued", "running")):
            self.cancel(job.id)
        self._queue.put(None)  # each worker passes it on and stops
        for t in self._threads:
            t.join(30)
        if self._own_sandbox:
            self.sandbox.close()

    # ------------------------------------------------------------------ internals
    def _slots_needed(self, spec: TrialSpec) -> int:
        gpus = spec.gpus if spec.gpus is not None else self.tasks(spec.task, spec.profile).resources.gpus
        return max(1, gpus)

    def _worker(self) -> None:
        """Under the dispatch lock take the next job and lease its slots; then run it."""
        while True:
            with self._dispatch_lock:
                job = self._queue.get()
                if job is None:
                    self._queue.put(None)
                    return
                lease = self._lease(job)
            if lease is not None:
                self._work(job, lease)

    def _lease(self, job: _Job) -> Lease | None:
        """Wait for the job's slots and mark it running; None if it was cancelled or refused."""
        if job.cancel.is_set():
            return None
        try:
            lease = self.pool.acquire(self._slots_needed(job.spec), cancel=job.cancel)
        except Exception as e:  # noqa: BLE001 - boundary: a bad request is that job's outcome
            with self._lock:
                self._table.finish(job, Outcome(status="infra_error", failure=f"{type(e).__name__}: {e}"))
            return None
        with self._lock:
            if lease is not None and job.state == "queued":
                job.state, job.lease, job.started_at = "running", lease, time.time()
                return lease
        if lease is not None:
            self.pool.release(lease)
        return None

    def _work(self, job: _Job, lease: Lease) -> None:
        try:
            outcome = self._run(job.spec, lease, job.cancel)
        except Exception as e:  # noqa: BLE001 - boundary: the run function itself failed
            outcome = Outcome(status="infra_error", failure=f"{type(e).__name__}: {e}")
        finally:
            self.sandbox.sweep(lease.slots)  # nothing of the slot's uid outlives the trial
            self.pool.release(lease)
        if job.cancel.is_set() and outcome.status != "cancelled":
            outcome = outcome.model_copy(update={"status": "cancelled", "failure": "cancelled while running"})
        with self._lock:
            self._table.finish(job, outcome)

    def data_dirs(self, task: Task) -> DataDirs:
        """Prepare the task's data once per backend."""
        with self._data_lock:
            if task.name not in self._data:
                self._data[task.name] = prepare_data(task, self.config.data_root / task.name)
            return self._data[task.name]

    def _evaluate(self, spec: TrialSpec, lease: Lease, cancel: threading.Event) -> Outcome:
        task = self.tasks(spec.task, spec.profile)
        return evaluate(task, spec, sandbox=self.sandbox, data_dirs=self.data_dirs(task),
                        lease=lease, cancel=cancel)
