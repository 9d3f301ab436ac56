"""The jobs a backend knows, by id, under one lock: what every `Backend` keeps the same way.

A backend's job type extends `Job` with where it runs (a lease, a SLURM id); `JobTable` holds
them for `wait`, `get`, `list` and `forget`, records outcomes (`finish`) and drops the oldest
finished jobs beyond `KEEP_FINISHED`, so a search of thousands of trials does not grow its
backend without limit. A backend that keeps its jobs in `self._table` takes those four methods
from `TableReads`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from evaluator_service.base import JobInfo, JobState
from evaluator_service.exceptions import JobNotFoundError
from evaluator_service.models import Outcome, TrialSpec

KEEP_FINISHED = 1000  # finished jobs kept beyond `forget`, oldest dropped first


@dataclass
class Job:
    """One job: its spec, state and outcome; `done` is set when it finished or was cancelled."""

    id: str
    spec: TrialSpec
    submitted_at: float = field(default_factory=time.time)
    state: JobState = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def placement(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(devices, slots) the job holds; none until it starts."""
        return (), ()

    def info(self) -> JobInfo:
        """A frozen view."""
        devices, slots = self.placement()
        return JobInfo(id=self.id, task=self.spec.task, label=self.spec.label, state=self.state,
                       submitted_at=self.submitted_at, started_at=self.started_at, finished_at=self.finished_at,
                       devices=devices, slots=slots, outcome=self.outcome)


J = TypeVar("J", bound=Job)


class JobTable(Generic[J]):
    """Jobs by id. `lock` guards them; methods named in the `Backend` protocol take it themselves,
    `job` and `finish` expect the caller to hold it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._jobs: dict[str, J] = {}

    def add(self, job: J) -> None:
        with self.lock:
            self.insert(job)

    def insert(self, job: J) -> None:
        """Add a job (caller holds the lock, say to queue it in the same step)."""
        self._jobs[job.id] = job

    def held(self) -> list[J]:
        """Every job, in no order (caller holds the lock)."""
        return list(self._jobs.values())

    def job(self, job_id: str) -> J:
        """The job (caller holds the lock). Raises `JobNotFoundError`."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(f"no job {job_id!r}") from None

    def jobs(self, keep: Callable[[J], bool] = lambda _j: True) -> list[J]:
        """The jobs `keep` selects, oldest first."""
        with self.lock:
            return sorted((j for j in self._jobs.values() if keep(j)), key=lambda j: j.submitted_at)

    def finish(self, job: J, outcome: Outcome) -> None:
        """Record the outcome and wake its waiters (caller holds the lock)."""
        job.outcome = outcome
        job.state = "cancelled" if outcome.status == "cancelled" else "finished"
        job.finished_at = time.time()
        job.done.set()
        finished = [j for j in self._jobs.values() if j.done.is_set()]
        for old in sorted(finished, key=lambda j: j.finished_at or 0.0)[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[old.id]

    # ---------------------------------------------------------------- the protocol's reads
    def wait(self, job_id: str, timeout: float | None = None) -> Outcome | None:
        """See `Backend.wait`."""
        with self.lock:
            job = self.job(job_id)
        return job.outcome if job.done.wait(timeout) else None

    def get(self, job_id: str) -> JobInfo:
        """See `Backend.get`."""
        with self.lock:
            return self.job(job_id).info()

    def list(self) -> list[JobInfo]:
        """See `Backend.list`."""
        with self.lock:
            return [j.info() for j in sorted(self._jobs.values(), key=lambda j: j.submitted_at)]

    def forget(self, job_id: str) -> bool:
        """See `Backend.forget`."""
        with self.lock:
            if not self.job(job_id).done.is_set():
                return False
            del self._jobs[job_id]
            return True


class TableReads:
    """`wait`, `get`, `list` and `forget` of the `Backend` protocol, read from `self._table`."""

    _table: JobTable[Any]

    def wait(self, job_id: str, timeout: float | None = None) -> Outcome | None:
        """See `Backend.wait`."""
        return self._table.wait(job_id, timeout)

    def get(self, job_id: str) -> JobInfo:
        """See `Backend.get`."""
        return self._table.get(job_id)

    def list(self) -> list[JobInfo]:
        """See `Backend.list`."""
        return self._table.list()

    def forget(self, job_id: str) -> bool:
        """See `Backend.forget`."""
        return self._table.forget(job_id)
