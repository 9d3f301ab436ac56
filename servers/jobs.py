"""Evaluation jobs for MCP clients: a recipe (files or an archive) or a calibration, by id.

Plain, synchronous code over an `evaluator_service` backend (no MCP); the evaluator server
wraps it. Jobs live in this process's memory and are gone when it stops (a search's trials
persist in the lineage instead). Each job has an owner (the caller), and callers see and
cancel only their own jobs. Submitted trees are written under `<root>/submissions/<job>/`
and removed once their job is finished.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator_service.base import Backend, JobInfo
from evaluator_service.calibrate import Calibration, calibration_specs, summarize_runs
from evaluator_service.exceptions import EvaluatorError
from evaluator_service.models import Outcome, TrialSpec
from servers._archive import write_archive, write_files
from servers.exceptions import RequestError
from servers.names import ref
from tasks.base import Task

MAX_SEEDS = 32
MAX_RUNS = 20
KEEP_JOBS = 1_000


class JobView(BaseModel):
    """One job as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    kind: Literal["evaluate", "calibrate"]
    task: str
    state: Literal["queued", "running", "finished", "cancelled"]
    finished: bool
    submitted_at: float = Field(description="epoch seconds")
    elapsed_s: float | None = None
    files: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    calibration: Calibration | None = None
    error: str = ""
    progress: str = ""


class _Job:
    def __init__(self, job_id: str, kind: str, task: str, owner: str, files: list[str]) -> None:
        self.id, self.kind, self.task, self.owner, self.files = job_id, kind, task, owner, files
        self.submitted_at = time.time()
        self.backend_ids: list[str] = []
        self.specs: list[TrialSpec] = []
        self.calibration: Calibration | None = None
        self.error = ""


class EvaluatorService:
    """Evaluate recipes and calibrate tasks on a backend, as jobs with ids (thread-safe)."""

    def __init__(self, root: Path, *, default_task: Task, backend: Backend | None = None,
                 workers: int = 1) -> None:
        self.root = Path(root)
        self.task = default_task
        self._own_backend = backend is None
        if backend is None:
            from servers._workers import make_backend

            backend = make_backend(self.root, slots=workers)
        self.backend = backend
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _task(self, name: str | None) -> Task:
        if name not in (None, "", self.task.name):
            raise RequestError(f"this evaluator serves task {self.task.name!r} only")
        return self.task

    def _new(self, kind: str, task: Task, owner: str, files: list[str]) -> _Job:
        with self._lock:
            job = _Job(f"{kind[:3]}-{next(self._ids):05d}", kind, task.name, owner, files)
            self._jobs[job.id] = job
            if len(self._jobs) > KEEP_JOBS:  # forget the oldest jobs
                for old in list(self._jobs)[: len(self._jobs) - KEEP_JOBS]:
                    del self._jobs[old]
            return job

    def evaluate(self, owner: str, *, files: Mapping[str, str] | None, archive_b64: str | None,
                 task: str | None, seeds: int | None) -> JobView:
        """Queue one evaluation of the given tree; returns at once."""
        the_task = self._task(task)
        if (files is None) == (archive_b64 is None):
            raise RequestError("send exactly one of `files` ({path: text}) or `archive_b64`")
        if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
            raise RequestError(f"seeds is 1..{MAX_SEEDS}")
        tree = self.root / "submissions" / f"tmp-{time.monotonic_ns()}-{threading.get_ident()}"
        try:
            names = write_files(tree, files) if files is not None else write_archive(tree, archive_b64 or "")
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        job = self._new("evaluate", the_task, owner, names)
        final = tree.with_name(job.id)
        tree.rename(final)
        spec = TrialSpec(task=the_task.name, tree=final, seeds=seeds, label=f"job {job.id} by {owner}")
        job.specs = [spec]
        job.backend_ids = [self.backend.submit(spec)]
        return self.get(owner, job.id)

    def calibrate(self, owner: str, *, task: str | None, runs: int | None) -> JobView:
        """Queue a calibration (the unmodified recipe, `runs` times, disjoint seeds)."""
        the_task = self._task(task)
        n = runs or the_task.calibration_seeds
        if not 1 <= n <= MAX_RUNS:
            raise RequestError(f"runs is 1..{MAX_RUNS}")
        job = self._new("calibrate", the_task, owner, [])
        job.specs = calibration_specs(the_task, n)
        job.backend_ids = [self.backend.submit(spec) for spec in job.specs]
        return self.get(owner, job.id)

    def _own(self, owner: str, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise RequestError(f"no job {job_id!r} of yours; {ref('list_jobs')} shows your jobs")
        return job

    def get(self, owner: str, job_id: str) -> JobView:
        return self._view(self._own(owner, job_id))

    def _view(self, job: _Job) -> JobView:
        infos: list[JobInfo] = [self.backend.get(i) for i in job.backend_ids]
        finished = all(i.state in ("finished", "cancelled") for i in infos)
        if all(i.state == "cancelled" for i in infos):
            state = "cancelled"
        elif finished:
            state = "finished"
        else:
            state = "running" if any(i.state != "queued" for i in infos) else "queued"
        if finished and job.kind == "evaluate":
            shutil.rmtree(self.root / "submissions" / job.id, ignore_errors=True)
        if finished and job.kind == "calibrate" and job.calibration is None and not job.error:
            try:
                job.calibration = summarize_runs(self.task, job.specs, [i.outcome for i in infos if i.outcome])
            except EvaluatorError as exc:
                job.error = str(exc)
        starts = [i.started_at for i in infos if i.started_at]
        ends = [i.finished_at for i in infos if i.finished_at]
        elapsed = round((max(ends) if finished and ends else time.time()) - min(starts), 2) if starts else None
        return JobView(job_id=job.id, kind=job.kind, task=job.task, state=state, finished=finished,  # type: ignore[arg-type]
                       submitted_at=job.submitted_at, elapsed_s=elapsed, files=job.files[:200],
                       outcome=infos[0].outcome if job.kind == "evaluate" else None,
                       calibration=job.calibration, error=job.error,
                       progress=f"{sum(i.state in ('finished', 'cancelled') for i in infos)}/{len(infos)} runs done")

    def cancel(self, owner: str, job_id: str) -> JobView:
        job = self._own(owner, job_id)
        for backend_id in job.backend_ids:
            self.backend.cancel(backend_id)
        return self._view(job)

    def list(self, owner: str) -> list[JobView]:
        """The owner's last 50 jobs, outcomes without their log tails (get shows those)."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner]
        views = [self._view(j) for j in mine[-50:]]
        return [v.model_copy(update={"outcome": v.outcome.model_copy(update={"log_tail": ""})}) if v.outcome else v
                for v in views]

    def close(self) -> None:
        """Cancel running evaluations; close the backend if this service built it."""
        with self._lock:
            ids = [i for j in self._jobs.values() for i in j.backend_ids]
        for backend_id in ids:
            if self.backend.get(backend_id).state in ("queued", "running"):
                self.backend.cancel(backend_id)
        if self._own_backend:
            self.backend.close()
        shutil.rmtree(self.root / "submissions", ignore_errors=True)
