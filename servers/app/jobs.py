"""Evaluation jobs for MCP clients: a recipe (files or an archive) or a calibration, by id.

Plain, synchronous code over an `evaluator_service` backend (no MCP); the evaluator server
wraps it. Jobs live in this process's memory and are gone when it stops (a search's trials
persist in the lineage instead). Each job has an owner (the caller): callers see and cancel
only their own jobs, and each may hold at most `JobLimits.open_jobs` queued or running jobs
and `open_bytes` of submitted files at a time. Inside a search a `Ledger` also admits each
job against the caller's cap for the whole search and records it as events.

Several processes may share one folder of submissions (several `serve` processes of a search:
`<state>/evaluator/submissions/`): job ids are random, each `EvaluationJobs` writes trees under a
folder of its own, `<pid>-<hex>/`,
removes only that folder when it closes (and those of processes that no longer exist when it
opens), and a job's tree is removed as soon as the job finishes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from evaluator_service.base import Backend, JobInfo
from evaluator_service.calibrate import Calibration, calibration_runs, calibration_specs, summarize_runs
from evaluator_service.exceptions import EvaluatorError, JobNotFoundError
from evaluator_service.models import Outcome, TrialSpec
from servers.app._archive import write_archive, write_files
from servers.exceptions import RequestError
from servers.names import ref
from tasks.base import Task

log = logging.getLogger(__name__)
MAX_SEEDS = 32
MAX_RUNS = 20
ENDED = ("finished", "cancelled")
CANCEL_WAIT_S = 10.0


@dataclass(frozen=True)
class JobLimits:
    """What one caller may hold at a time, and how many jobs a table remembers."""

    open_jobs: int = 4
    open_bytes: int = 64_000_000
    keep: int = 1_000


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


class Ledger(Protocol):
    """Admits and records a search's evaluator jobs (see `servers.app._ledger.SearchLedger`)."""

    def admit(self, owner: str, job_id: str, kind: str, runs: int) -> None:
        """Record the job, or raise `RequestError` when the owner's cap would be passed."""

    def finished(self, owner: str, job: JobView) -> None:
        """Record how the job ended."""


def _new_id(kind: str) -> str:
    """A job id no other process of the host will make ("eva-" or "cal-" and 16 hex digits)."""
    return f"{kind[:3]}-{uuid.uuid4().hex[:16]}"


class _Job:
    def __init__(self, job_id: str, kind: str, task: str, owner: str, files: list[str], tree: Path | None,
                 size: int) -> None:
        self.id = job_id
        self.kind, self.task, self.owner, self.files, self.tree, self.size = kind, task, owner, files, tree, size
        self.submitted_at = time.time()
        self.backend_ids: list[str] = []
        self.specs: list[TrialSpec] = []
        self.calibration: Calibration | None = None
        self.error = ""
        self.ended = False  # finished or cancelled, tree removed, calibration summarised
        self.final: list[JobInfo] = []  # the backend's last view of its runs, kept once it ended
        self.lock = threading.Lock()


class EvaluationJobs:
    """The table of this process's evaluation jobs: recipes evaluated and tasks calibrated on a
    backend, each a job with an id and an owner (thread-safe)."""

    def __init__(self, submissions: Path, *, default_task: Task, backend: Backend,
                 limits: JobLimits = JobLimits(), ledger: Ledger | None = None) -> None:
        """`submissions`: the folder whose sub-folders, one per `EvaluationJobs`, hold the jobs' trees (a
        search's is `StateLayout.submissions`); the caller closes `backend` after these jobs."""
        self.task = default_task
        self.limits = limits
        self.ledger = ledger
        self.backend = backend
        self.work = Path(submissions) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _sweep_dead(Path(submissions))
        self._jobs: dict[str, _Job] = {}
        self._followers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _task(self, name: str | None) -> Task:
        if name not in (None, "", self.task.name):
            raise RequestError(f"this evaluator serves task {self.task.name!r} only")
        return self.task

    # ---------------------------------------------------------------- submitting
    def evaluate(self, owner: str, *, files: Mapping[str, str] | None, archive_b64: str | None,
                 task: str | None, seeds: int | None) -> JobView:
        """Queue one evaluation of the given tree; returns at once."""
        the_task = self._task(task)
        if (files is None) == (archive_b64 is None):
            raise RequestError("send exactly one of `files` ({path: text}) or `archive_b64`")
        if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
            raise RequestError(f"seeds is 1..{MAX_SEEDS}")
        self._check_open(owner, 0)
        job_id = _new_id("evaluate")
        tree = self.work / job_id
        try:
            names = write_files(tree, files) if files is not None else write_archive(tree, archive_b64 or "")
            size = sum((tree / n).stat().st_size for n in names)
            job = _Job(job_id, "evaluate", the_task.name, owner, names, tree, size)
            spec = TrialSpec(task=the_task.name, profile=getattr(the_task, "profile", ""), tree=tree, seeds=seeds, label=f"job {job_id} by {owner}")
            self._start(job, [spec])
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        return self.get(owner, job.id)

    def calibrate(self, owner: str, *, task: str | None, runs: int | None) -> JobView:
        """Queue a calibration (the unmodified recipe, `runs` times, disjoint seeds)."""
        the_task = self._task(task)
        n = calibration_runs(the_task, runs)
        if not 1 <= n <= MAX_RUNS:
            raise RequestError(f"runs is 1..{MAX_RUNS}")
        job = _Job(_new_id("calibrate"), "calibrate", the_task.name, owner, [], None, 0)
        self._start(job, calibration_specs(the_task, n))
        return self.get(owner, job.id)

    def _start(self, job: _Job, specs: list[TrialSpec]) -> None:
        """Register the job within the caller's caps, admit it (ledger), submit it, follow it."""
        with self._lock:
            self._check_open(job.owner, job.size, locked=True)
            self._jobs[job.id] = job
            for old in list(self._jobs)[: max(0, len(self._jobs) - self.limits.keep)]:
                if self._jobs[old].ended:
                    del self._jobs[old]
        try:
            if self.ledger is not None:
                self.ledger.admit(job.owner, job.id, job.kind, len(specs))
            job.specs = specs
            job.backend_ids = [self.backend.submit(spec) for spec in specs]
        except BaseException:
            with self._lock:
                self._jobs.pop(job.id, None)
            for backend_id in job.backend_ids:
                self.backend.cancel(backend_id)
            raise
        follower = threading.Thread(target=self._follow, args=(job,), name=f"follow-{job.id}", daemon=True)
        with self._lock:
            self._followers = [t for t in self._followers if t.is_alive()] + [follower]
        follower.start()

    def _check_open(self, owner: str, adding: int, locked: bool = False) -> None:
        if not locked:
            with self._lock:
                return self._check_open(owner, adding, locked=True)
        mine = [j for j in self._jobs.values() if j.owner == owner and not j.ended]
        lim = self.limits
        if len(mine) >= lim.open_jobs:
            raise RequestError(
                f"you have {len(mine)} evaluator jobs queued or running (the limit is {lim.open_jobs}); wait for "
                f"one with {ref('get_job')} or stop one with {ref('cancel_job')}")
        held = sum(j.size for j in mine) + adding
        if held > lim.open_bytes:
            raise RequestError(
                f"your queued and running jobs would hold {held} bytes of files (the limit is {lim.open_bytes}); "
                "wait for one to finish, or send a smaller tree")
        return None

    # ---------------------------------------------------------------- ending
    def _follow(self, job: _Job) -> None:
        """Wait for every run of the job in the backend, then end it (tree, calibration, record)."""
        for backend_id in job.backend_ids:
            try:
                self.backend.wait(backend_id)
            except JobNotFoundError:  # a reader saw every run end and ended the job first
                break
        self._end(job)

    def _infos(self, job: _Job) -> list[JobInfo]:
        """The backend's view of the job's runs; once the job ended, the view kept at its end."""
        with job.lock:
            if job.ended:
                return job.final
        try:
            return [self.backend.get(i) for i in job.backend_ids]
        except JobNotFoundError:  # it ended (and the backend forgot its runs) meanwhile
            with job.lock:
                return job.final

    def _end(self, job: _Job) -> None:
        """Remove the job's tree, summarise a calibration, record the end (once); the backend
        then forgets the runs (this table keeps their last view)."""
        with job.lock:
            if job.ended:
                return
            infos = [self.backend.get(i) for i in job.backend_ids]
            if job.tree is not None:
                shutil.rmtree(job.tree, ignore_errors=True)
            if job.kind == "calibrate" and not all(i.state == "cancelled" for i in infos):
                try:
                    job.calibration = summarize_runs(self.task, job.specs, [i.outcome for i in infos if i.outcome])
                except EvaluatorError as exc:
                    job.error = str(exc)
            job.final, job.ended = infos, True
            for backend_id in job.backend_ids:
                self.backend.forget(backend_id)
            if self.ledger is not None:
                try:
                    self.ledger.finished(job.owner, self._view(job, infos))
                except Exception:  # boundary: a failed record must not keep the job open
                    log.exception("recording the end of evaluator job %s failed", job.id)

    # ---------------------------------------------------------------- reading
    def _own(self, owner: str, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise RequestError(f"no job {job_id!r} of yours; {ref('list_jobs')} shows your jobs")
        return job

    def get(self, owner: str, job_id: str) -> JobView:
        job = self._own(owner, job_id)
        infos = self._infos(job)
        if all(i.state in ENDED for i in infos) and not job.ended:
            self._end(job)  # the follower may not have woken yet: the view is the same either way
        return self._view(job, infos)

    def _view(self, job: _Job, infos: list[JobInfo]) -> JobView:
        finished = all(i.state in ENDED for i in infos)
        if all(i.state == "cancelled" for i in infos):
            state = "cancelled"
        elif finished:
            state = "finished"
        else:
            state = "running" if any(i.state != "queued" for i in infos) else "queued"
        starts = [i.started_at for i in infos if i.started_at]
        ends = [i.finished_at for i in infos if i.finished_at]
        elapsed = round((max(ends) if finished and ends else time.time()) - min(starts), 2) if starts else None
        return JobView(job_id=job.id, kind=job.kind, task=job.task, state=state, finished=finished,  # type: ignore[arg-type]
                       submitted_at=job.submitted_at, elapsed_s=elapsed, files=job.files[:200],
                       outcome=infos[0].outcome if job.kind == "evaluate" else None,
                       calibration=job.calibration, error=job.error,
                       progress=f"{sum(i.state in ENDED for i in infos)}/{len(infos)} runs done")

    def cancel(self, owner: str, job_id: str) -> JobView:
        """Cancel the job; a running sandbox is killed, which this waits for (up to CANCEL_WAIT_S)."""
        job = self._own(owner, job_id)
        try:
            for backend_id in job.backend_ids:
                self.backend.cancel(backend_id)
            deadline = time.monotonic() + CANCEL_WAIT_S
            for backend_id in job.backend_ids:
                self.backend.wait(backend_id, max(0.0, deadline - time.monotonic()))
        except JobNotFoundError:  # it ended meanwhile: nothing left to cancel
            pass
        return self.get(owner, job_id)

    def list(self, owner: str) -> list[JobView]:
        """The owner's last 50 jobs, outcomes without their log tails (get shows those)."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner]
        views = [self.get(owner, j.id) for j in mine[-50:]]
        return [v.model_copy(update={"outcome": v.outcome.model_copy(update={"log_tail": ""})}) if v.outcome else v
                for v in views]

    def close(self) -> None:
        """Cancel the unfinished jobs and remove this table's folder."""
        with self._lock:
            ids = [i for j in self._jobs.values() if not j.ended for i in j.backend_ids]
            followers = list(self._followers)
        for backend_id in ids:
            try:
                self.backend.cancel(backend_id)
            except JobNotFoundError:  # ended and forgotten meanwhile
                pass
        deadline = time.monotonic() + 30
        for follower in followers:
            follower.join(max(0.0, deadline - time.monotonic()))
        shutil.rmtree(self.work, ignore_errors=True)


def _sweep_dead(submissions: Path) -> None:
    """Remove the folders of services whose process no longer exists (it crashed before closing)."""
    if not submissions.is_dir():
        return
    for folder in submissions.iterdir():
        match = re.fullmatch(r"(\d+)-[0-9a-f]{8}", folder.name)
        if match and not _alive(int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
