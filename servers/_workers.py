"""Evaluator workers inside a serve process, and the calibration `autoresearch init` runs.

At most one process per state directory runs a search's `LineageWorker` at a time: the
holder of an exclusive lock on `<state>/evaluator/workers.lock`. Other serve processes (say,
one stdio server per specialist) stand by and retry every few seconds, so one takes over when
the holder stops. The worker shares the runtime's `LocalBackend` slot pool with evaluator
jobs, so trials and ad-hoc evaluations never oversubscribe the machine.

Stopping: the worker finishes no new claims; a trial still running after `grace_s` is
cancelled in the store (its row says why; `cancelled` is not held against the idea).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator_service.local import LocalBackend, LocalBackendConfig
from lineage.models import Trial, TrialStatus

if TYPE_CHECKING:
    from servers.runtime import SearchRuntime
    from servers.search import Baseline
    from tasks.base import Task

log = logging.getLogger(__name__)
RETRY_S = 2.0


def make_backend(state_dir: Path, slots: int) -> LocalBackend:
    """The local backend of a search: work dir `<state>/evaluator`, data `<state>/data/<task>`."""
    return LocalBackend(LocalBackendConfig(workdir=state_dir / "evaluator", data_root=state_dir / "data",
                                           cpu_slots=max(1, slots)))


class WorkerPool:
    """Runs the search's LineageWorker in a background thread while this process holds the lock."""

    def __init__(self, rt: SearchRuntime, grace_s: float = 10.0) -> None:
        self.rt = rt
        self.grace_s = grace_s
        self.stop_event = threading.Event()
        self.holding = threading.Event()
        self.worker_id: str | None = None
        self._thread = threading.Thread(target=self._main, name=f"workers-{rt.search_id}", daemon=True)

    def start(self) -> WorkerPool:
        self._thread.start()
        return self

    def _lock(self) -> int | None:
        path = self.rt.evaluator_dir / "workers.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _main(self) -> None:
        fd = None
        while fd is None and not self.stop_event.is_set():
            fd = self._lock()
            if fd is None:
                self.stop_event.wait(RETRY_S)
        if fd is None:
            return
        try:
            self.holding.set()
            self._run()
        except Exception:  # boundary: a worker failure is logged, the server keeps serving
            log.exception("evaluator workers of %s stopped", self.rt.search_id)
        finally:
            os.close(fd)  # releases the lock

    def _run(self) -> None:
        from evaluator_service.worker import LineageWorker

        backend = self.rt.backend()
        snapshots = self.rt.snapshots

        def materialize(trial: Trial, dest: Path) -> Path:
            snapshots.materialize(trial.snapshot or "", dest)
            return dest

        worker = LineageWorker(self.rt.store, self.rt.search_id, self.rt.task, materialize,
                               sandbox=backend.sandbox, pool=backend.pool, data_dirs=backend.data_dirs(self.rt.task))
        self.worker_id = worker.id
        worker.run(self.stop_event)

    def stop(self) -> None:
        """Stop claiming; cancel what still runs after the grace period; wait for the thread."""
        self.stop_event.set()
        self._thread.join(self.grace_s)
        if self._thread.is_alive() and self.worker_id:
            for t in self.rt.store.list_trials(self.rt.search_id, statuses=[TrialStatus.RUNNING]):
                if t.worker == self.worker_id:
                    self.rt.store.cancel_trial(self.rt.search_id, t.exp_id, "the serve process running it stopped")
            self._thread.join(60)


def start_workers(rt: SearchRuntime) -> WorkerPool:
    return WorkerPool(rt, grace_s=rt.worker_grace_s).start()


def calibrate_recipe(task: Task, state_dir: Path, runs: int | None = None) -> Baseline:
    """Calibrate the unmodified recipe on a local backend under `<state>/evaluator`."""
    from evaluator_service.calibrate import calibrate_on
    from servers.search import Baseline

    n = runs or task.calibration_seeds
    # as many at once as a search runs trials (one per core on CPU; the GPUs present on GPU), so
    # the spread is measured under the conditions the trials will meet
    backend = make_backend(Path(state_dir), slots=os.cpu_count() or 1)
    try:
        cal = calibrate_on(backend, task, n)
    finally:
        backend.close()
    return Baseline(score=cal.mean, spread=cal.spread, n=cal.n, calibration=cal)
