"""`RemoteWorker`: the trials of every `workers` search in one lineage database, run on this host.

`autoresearch worker --database-url postgresql://...` builds one. It needs only the database URL
and the tasks prepared on this host: snapshots come from the database (`lineage.snapshots`,
cached under the work dir), each search's task is resolved from its config
(`load_search_task`, with the task root on this host), and trials run sandboxed on one
`LocalBackend` over this host's GPUs (or CPU slots), leased host-wide, so trials never share a
GPU. Each search has a `LineageWorker`; one thread per slot loops: confirm a waiting candidate
keep of any search, else claim the oldest queued trial across the searches (one atomic claim)
and run it on that search's worker, which heartbeats the row and finishes it. A housekeeping
thread cancels rows cancelled in the store, stamps held rows, reconciles stale ones (whatever
host they ran on) and picks up searches created later.

Stopping: `stop` ends claiming; what runs finishes; `abandon` cancels it and hands the trials
back to the queue (the attempts rule), for another worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evaluator_service.evaluate import evaluate
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.slots import Lease, SlotPool
from evaluator_service.worker import IDLE_POLL_S, LineageWorker, worker_id
from lineage.exceptions import LineageError
from lineage.models import MAX_ATTEMPTS, REMOTE_WORKERS, SearchConfig, Trial
from lineage.snapshots import SnapshotStore
from lineage.sql import SqlLineageStore
from servers.app.runtime import load_search_task
from tasks.base import Task

log = logging.getLogger(__name__)
HOUSEKEEP_S = 0.5  # cancellations, heartbeats and reconciliation are looked at this often
DISCOVER_S = 5.0  # how often new `workers` searches are looked for


@dataclass(frozen=True)
class Running:
    """What one slot thread runs now."""

    search_id: str
    exp_id: int
    specialist: str
    since: float  # epoch seconds


def search_task(config: SearchConfig, tasks_home: Path | None) -> Task:
    """The task a search evaluates, as prepared on this host: under `tasks_home/<task>` when
    given (a task fetched by `tasks prepare`), else where the search recorded if that exists
    here, else where this host prepared it (`tasks prepare` remembers).

    Raises:
        TaskError: unknown task, not prepared here (the message gives the command), bad settings.
    """
    from tasks.registry import check_prepared

    if config.task_root:
        if tasks_home is not None:
            config = config.model_copy(update={"task_root": str(Path(tasks_home) / Path(config.task_root).name)})
        elif not Path(config.task_root).is_dir():
            config = config.model_copy(update={"task_root": ""})  # this host's own root for it
    task = load_search_task(config)
    check_prepared(task)
    return task


class RemoteWorker:
    """Runs the `workers` searches of one database on this host. See the module docstring.

    Args:
        work_dir: this host's private dir: evaluator work dir, task data, snapshot cache, trees.
        pool: this host's slots (leased host-wide); its size is how many trials run at once.
        tasks_home: where tasks fetched by `tasks prepare` live here, if not where searches recorded.
        searches: only these search ids (None: every `workers` search, also ones created later).
    """

    def __init__(self, store: SqlLineageStore, work_dir: Path, pool: SlotPool, *, tasks_home: Path | None = None,
                 searches: list[str] | None = None, poll_s: float = 0.1, max_attempts: int = MAX_ATTEMPTS,
                 unisolated: bool = False,
                 on_finish: Callable[[Trial], None] | None = None) -> None:
        self.store, self.work_dir = store, Path(work_dir)
        self.tasks_home, self.only = tasks_home, searches
        self.poll_s, self.max_attempts, self.on_finish = poll_s, max_attempts, on_finish
        self.id = worker_id()
        self.snapshots = SnapshotStore(self.work_dir / "snapshots", store)
        self.workers: dict[str, LineageWorker] = {}
        self.skipped: dict[str, str] = {}  # search id -> why this host cannot run it
        self.running: dict[str, Running] = {}  # slot thread name -> what it runs
        self.finished = 0
        self._lock = threading.Lock()
        config = LocalBackendConfig(workdir=self.work_dir / "evaluator", data_root=self.work_dir / "data",
                                    unisolated=unisolated)
        self.backend = LocalBackend(config, tasks=self._task_by_name, pool=pool, run=self._run)

    # ---------------------------------------------------------------- searches
    def discover(self) -> list[str]:
        """Add a `LineageWorker` for each `workers` search not seen yet; returns the ids added."""
        added = []
        searches = self.store.list_searches()
        for sid in sorted(set(self.only or ()) - {s.id for s in searches} - set(self.skipped)):
            self.skipped[sid] = "no such search in this database (yet: it is looked for again on restart)"
        for search in searches:
            sid, config = search.id, search.config
            if sid in self.workers or sid in self.skipped or (self.only is not None and sid not in self.only):
                continue
            if config.backend != REMOTE_WORKERS:
                if self.only is not None:
                    self.skipped[sid] = (f"its trials run on the {config.backend!r} backend, not on workers "
                                         f"(create it with --backend {REMOTE_WORKERS})")
                continue
            try:
                task = search_task(config, self.tasks_home)
            except Exception as e:  # noqa: BLE001 - boundary: one search this host cannot run is skipped
                self.skipped[sid] = f"{type(e).__name__}: {e}"
                log.warning("search %s skipped on this host: %s", sid, self.skipped[sid])
                continue
            worker = LineageWorker(self.store, sid, task, self._materialize, backend=self.backend,
                                   trees=self.work_dir / "trees", poll_s=self.poll_s, max_attempts=self.max_attempts)
            worker.id = self.id
            with self._lock:
                self.workers[sid] = worker
            added.append(sid)
        return added

    def _materialize(self, trial: Trial, dest: Path) -> Path:
        self.snapshots.materialize(trial.snapshot or "", dest)
        return dest

    def _task_by_name(self, name: str, profile: str = "") -> Task:
        with self._lock:
            for w in self.workers.values():
                if w.task.name == name and getattr(w.task, "profile", "") == profile:
                    return w.task
        raise LineageError(f"no search of task {name!r} ({profile or 'full'}) is served by this worker")

    def _run(self, spec: TrialSpec, lease: Lease, cancel: threading.Event) -> Outcome:
        """The backend's run function: the spec's search's task, on this host's data."""
        task = self.workers[spec.search_id or ""].task
        return evaluate(task, spec, sandbox=self.backend.sandbox, data_dirs=self.backend.data_dirs(task),
                        lease=lease, cancel=cancel)

    # ---------------------------------------------------------------- running
    def step(self) -> Trial | None:
        """Confirm a waiting candidate of any search, else claim the oldest queued trial of the
        searches and run it; None if there was nothing to do."""
        with self._lock:
            workers = dict(self.workers)
        for worker in workers.values():
            done = worker.confirm_step()
            if done is not None:
                return self._done(done)
        trial = self.store.claim_trial(None, self.id, searches=list(workers))
        if trial is None:
            return None
        me = threading.current_thread().name
        self.running[me] = Running(trial.search_id, trial.exp_id, trial.specialist, time.time())
        try:
            return self._done(workers[trial.search_id].run_claimed(trial))
        finally:
            self.running.pop(me, None)

    def _done(self, trial: Trial) -> Trial:
        with self._lock:
            self.finished += 1
        if self.on_finish is not None:
            self.on_finish(trial)
        return trial

    def run(self, stop: threading.Event) -> int:
        """Run until `stop`: one thread per slot, and housekeeping; returns how many trials this
        call finished. What runs when `stop` is set finishes (or is abandoned)."""
        self.discover()
        for w in list(self.workers.values()):
            w.reconcile()
        done_before = self.finished
        threads = [threading.Thread(target=self._loop, args=(stop,), name=f"slot-{i}")
                   for i in range(self.backend.capacity)]
        ended = threading.Event()
        keeper = threading.Thread(target=self._housekeep, args=(ended,), name="housekeeping", daemon=True)
        keeper.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ended.set()
        keeper.join(5)
        for sid, w in list(self.workers.items()):
            self.store.release_confirmations(sid, lambda worker, me=w.id: worker != me, stale_s=None)
        return self.finished - done_before

    def _loop(self, stop: threading.Event) -> None:
        wait = self.poll_s
        while not stop.is_set():
            try:
                did = self.step()
            except Exception:  # noqa: BLE001 - boundary: a lost database connection must not end the slot
                log.warning("claiming failed; retrying", exc_info=True)
                did = None
                wait = IDLE_POLL_S
            if did is not None:
                wait = self.poll_s
            else:
                stop.wait(wait)
                wait = min(IDLE_POLL_S, wait * 2)

    def _housekeep(self, ended: threading.Event) -> None:
        last = time.monotonic()
        while not ended.wait(HOUSEKEEP_S):
            for w in list(self.workers.values()):
                w.housekeep()
            if time.monotonic() - last >= DISCOVER_S:
                last = time.monotonic()
                try:
                    for sid in self.discover():
                        log.info("now serving search %s", sid)
                except Exception:  # noqa: BLE001 - boundary: retried on the next round
                    log.warning("looking for new searches failed", exc_info=True)

    def abandon(self, why: str) -> None:
        """Cancel what runs now; each trial goes back to the queue for another worker."""
        for w in list(self.workers.values()):
            w.abandon(why)

    def close(self) -> None:
        self.backend.close()
