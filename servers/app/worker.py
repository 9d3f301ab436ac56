"""The evaluator worker of a serve process: one thread running the search's `LineageWorker`.

At most one process per state directory runs a search's `LineageWorker` at a time: the
holder of an exclusive lock on `<state>/evaluator/workers.lock`. Other serve processes (say,
one stdio server per specialist) stand by and retry every few seconds, so one takes over when
the holder stops. The worker submits to the runtime's backend, which evaluator jobs share, so
trials and ad-hoc evaluations queue in one place and never oversubscribe the machine.

Stopping: the worker finishes no new claims; a trial still running after `grace_s` is
cancelled in the store (its row says why; `cancelled` is not held against the idea).

A search on the `workers` backend runs no worker here; its serve process runs a `Reconciler`
instead, so the trials of a remote worker that died are re-queued once its heartbeat is stale
even while no other worker runs to notice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator_service.worker import RECONCILE_S, LineageWorker, is_alive
from lineage.models import Trial, TrialStatus

if TYPE_CHECKING:
    from evaluator_service.base import Backend
    from lineage.snapshots import SnapshotStore
    from lineage.sql import SqlLineageStore
    from tasks.base import Task

log = logging.getLogger(__name__)
RETRY_S = 2.0


class WorkerThread:
    """One background thread that runs the search's `LineageWorker` while this process holds the lock."""

    def __init__(self, store: SqlLineageStore, search_id: str, task: Task, snapshots: SnapshotStore,
                 backend: Backend, trees: Path, lock: Path, grace_s: float = 10.0) -> None:
        self.store, self.search_id, self.task = store, search_id, task
        self.snapshots, self.backend, self.trees, self.lock = snapshots, backend, trees, lock
        self.grace_s = grace_s
        self.stop_event = threading.Event()
        self.holding = threading.Event()
        self.worker_id: str | None = None
        self._thread = threading.Thread(target=self._main, name=f"workers-{search_id}", daemon=True)

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def _lock(self) -> int | None:
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
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
            log.exception("evaluator workers of %s stopped", self.search_id)
        finally:
            os.close(fd)  # releases the lock

    def _run(self) -> None:
        snapshots = self.snapshots

        def materialize(trial: Trial, dest: Path) -> Path:
            snapshots.materialize(trial.snapshot or "", dest)
            return dest

        worker = LineageWorker(self.store, self.search_id, self.task, materialize, backend=self.backend,
                               trees=self.trees)
        self.worker_id = worker.id
        worker.run(self.stop_event)

    def stop(self) -> None:
        """Stop claiming; cancel what still runs after the grace period; wait for the thread."""
        self.stop_event.set()
        self._thread.join(self.grace_s)
        if self._thread.is_alive() and self.worker_id:
            for t in self.store.list_trials(self.search_id, statuses=[TrialStatus.RUNNING]):
                if t.worker == self.worker_id:
                    self.store.cancel_trial(self.search_id, t.exp_id, "the serve process running it stopped")
            self._thread.join(60)


class Reconciler:
    """A thread that reconciles a search every `interval_s`: re-queues (or fails, past the
    attempts rule) the rows of workers that are gone or whose heartbeat is stale, and hands back
    their candidates. For a search whose trials run in `autoresearch worker` processes."""

    def __init__(self, store: SqlLineageStore, search_id: str, interval_s: float = RECONCILE_S) -> None:
        self.store, self.search_id, self.interval_s = store, search_id, interval_s
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"reconcile-{search_id}", daemon=True)

    def start(self) -> Reconciler:
        self._thread.start()
        return self

    def _main(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            try:
                for t in self.store.reconcile(self.search_id, is_alive):
                    log.info("exp %s of a gone worker: %s", t.exp_id, t.status.value)
            except Exception:  # boundary: a failed pass (database away a moment) is retried next time
                log.warning("reconciling %s failed", self.search_id, exc_info=True)

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(30)
