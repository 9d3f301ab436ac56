"""`SearchRuntime`: everything a server process holds for one search, opened once.

It owns the opened state directory (lineage store, snapshot store), the task, one `Workspace`
per specialist, and optionally the evaluator workers that run queued trials inside this
process (never for a search on the `workers` backend: `autoresearch worker` processes, on this
host or others, run its trials, and this process only re-queues those of a worker that is
gone). Several servers (and several in-process suites, one per specialist) share one
runtime; `running()` is reference-counted, so workers start with the first user and stop
with the last.

Where each part lives under the state directory is `lineage.state.StateLayout`'s (`rt.layout`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from evaluator_service.base import Backend
from lineage.models import REMOTE_WORKERS, Search, SearchConfig
from lineage.snapshots import SnapshotStore
from lineage.sql import SqlLineageStore
from lineage.state import StateDir, StateLayout
from servers.app._ledger import SearchLedger
from servers.app._watch import TrialWatch
from servers.app.backend import search_backend
from servers.app.jobs import EvaluationJobs
from servers.app.worker import Reconciler, WorkerThread
from servers.app.workspace import Workspace, WorkspaceLimits
from servers.exceptions import IdentityError
from tasks.base import Role, Task

log = logging.getLogger(__name__)


def load_task(name: str, profile: str = "") -> Task:
    """The task named `name` (as `profile` changes it), from the tasks registry."""
    from tasks.registry import get_task

    return get_task(name, profile)


def load_search_task(config: SearchConfig) -> Task:
    """The task a search evaluates: its profile's, under the settings its calibration recorded
    (`SearchConfig.calibrated_env`, say the compute budget measured on this machine), pinned to
    the root where it was prepared. Every evaluation of the search runs this task: its trials,
    their confirmation runs, evaluator jobs and calibration re-runs.

    Raises:
        UnknownTaskError, TaskSettingsError: the task is gone, or cannot take the recorded settings.
    """
    from tasks.registry import pin_task_root, with_env

    task = with_env(load_task(config.task, config.profile), config.calibrated_env)
    pin_task_root(task, config.task_root)  # where it was prepared when the search was created
    return task


@dataclass
class SearchRuntime:
    """One opened search. Build with `SearchRuntime.open(state_dir)`."""

    state: StateDir
    task: Task
    config: SearchConfig
    limits: WorkspaceLimits = WorkspaceLimits()
    workers: int = 1
    worker_grace_s: float = 10.0
    evaluator_runs: int = 8
    _workspaces: dict[str, Workspace] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _users: int = field(default=0, repr=False)
    _worker: WorkerThread | Reconciler | None = field(default=None, repr=False)
    _backend: Backend | None = field(default=None, repr=False)
    _jobs: EvaluationJobs | None = field(default=None, repr=False)
    _watch: TrialWatch | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path, *, workers: int = 1, limits: WorkspaceLimits | None = None) -> SearchRuntime:
        """Open the search in `path`.

        Args:
            workers: evaluator workers this process runs while serving (0: another process,
                such as the supervisor or `autoresearch serve` elsewhere, runs them). When the
                last holder of `running()` leaves, trials still running after
                `worker_grace_s` are cancelled in the store (set it after opening).
            limits: workspace limits (defaults: `WorkspaceLimits()`).
        """
        state = StateDir.open(path)
        config = state.search.config
        task = load_search_task(config)
        return cls(state=state, task=task, config=config, limits=limits or WorkspaceLimits(), workers=workers)

    # ---------------------------------------------------------------- parts
    @property
    def search_id(self) -> str:
        return self.state.search_id

    @property
    def store(self) -> SqlLineageStore:
        return self.state.store

    @property
    def snapshots(self) -> SnapshotStore:
        return self.state.snapshots

    @property
    def roster(self) -> tuple[str, ...]:
        return self.config.roster

    @property
    def layout(self) -> StateLayout:
        return self.state.layout

    def search(self) -> Search:
        """The search as it is now (best, baseline, counters)."""
        return self.store.get_search(self.search_id)

    def workspace(self, specialist: str) -> Workspace:
        """The specialist's workspace (one object per specialist, so one lock)."""
        if specialist not in self.roster:
            raise IdentityError(f"{specialist!r} is not a specialist of this search")
        with self._lock:
            ws = self._workspaces.get(specialist)
            if ws is None:
                ws = Workspace(self.layout.workspace(specialist), tuple(self.task.editable),
                               self.snapshots, self.limits)
                self._workspaces[specialist] = ws
            return ws

    def role(self, specialist: str) -> Role | None:
        """The task's roster role of this name (roles arm only), else None."""
        if self.config.arm != "roles":
            return None
        return next((r for r in self.task.roster() if r.name == specialist), None)

    def backend(self) -> Backend:
        """The backend the search's config names (built on first use): one queue for trials and
        evaluator jobs, which runs the search's task (recorded settings included) for every spec."""
        with self._lock:
            if self._backend is None:
                self._backend = search_backend(self.config, self.state.path, max(1, self.workers), self.task)
            return self._backend

    def jobs(self) -> EvaluationJobs:
        """The evaluator jobs of this process, on `backend()`: each caller may queue
        `evaluator_runs` runs in the whole search, recorded as events."""
        backend = self.backend()
        with self._lock:
            if self._jobs is None:
                ledger = SearchLedger(self.store, self.search_id, self.evaluator_runs)
                self._jobs = EvaluationJobs(self.layout.submissions, default_task=self.task, backend=backend,
                                              ledger=ledger)
            return self._jobs

    def watch(self) -> TrialWatch:
        """The watch that wakes this process's waiters when their trials change (one per runtime)."""
        with self._lock:
            if self._watch is None:
                self._watch = TrialWatch(self._statuses)
            return self._watch

    def _statuses(self, exp_ids: list[int]) -> dict[int, str]:
        return {t.exp_id: t.status.value for t in self.store.get_trials(self.search_id, exp_ids)}

    # ---------------------------------------------------------------- lifecycle
    @asynccontextmanager
    async def running(self) -> AsyncIterator[SearchRuntime]:
        """Hold the runtime open; the first holder starts the workers, the last stops them."""
        with self._lock:
            self._users += 1
            first = self._users == 1
        try:
            if first and self.workers > 0 and self.config.backend != REMOTE_WORKERS:  # else `autoresearch worker`s
                self._worker = await anyio.to_thread.run_sync(self._start_worker)
            elif first and self.workers > 0:  # their trials: re-queued here too once a worker is gone
                self._worker = Reconciler(self.store, self.search_id).start()
            yield self
        finally:
            with self._lock:
                self._users -= 1
                last = self._users == 0
            if last:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._stop)

    def _stop(self) -> None:
        """Stop workers, then evaluator jobs, then the backend (the last holder left)."""
        with self._lock:
            worker, jobs, backend = self._worker, self._jobs, self._backend
            self._worker = self._jobs = self._backend = None
        if worker is not None:
            worker.stop()
        if jobs is not None:
            jobs.close()
        if backend is not None:
            backend.close()

    def _start_worker(self) -> WorkerThread:
        return WorkerThread(self.store, self.search_id, self.task, self.snapshots, self.backend(),
                            self.layout.trees, self.layout.workers_lock, grace_s=self.worker_grace_s).start()

    def close(self) -> None:
        """Close the store (after the last `running()` holder left)."""
        self.state.close()
