"""`LineageWorker`: evaluate the trials queued in a lineage store, in exp_id order, on a backend.

The queue lives in the store, so it survives restarts: on start the worker reconciles rows
left `running` by dead workers (re-queued or `infra_error`, by the store's rule), then each
of its threads (one per job the backend runs at once, `Backend.capacity`) loops
`claim_trial` (atomic queued -> running, oldest first) -> materialise the snapshot ->
`backend.submit` -> wait (or `backend.cancel`) -> `finish_trial(outcome)` -> `backend.forget`.
Where and how the trial runs (slots, sandbox, a SLURM job) is the backend's; a run the
backend's infrastructure lost (`Outcome.retry`) is re-queued by the store's attempts rule.
A thread that finds the queue empty waits twice as long each time, up to `IDLE_POLL_S`, so an
idle search does not poll its database ten times a second. A row cancelled in the store while
it runs has its sandbox killed, also after the worker was told to stop claiming.

While it holds rows (a running trial, a candidate it confirms) the worker stamps each every
`HEARTBEAT_S` (`LineageStore.heartbeat`); a row it holds no more (re-queued after its stamp
went stale, cancelled) has its job cancelled, and finishing it would fail (`finish_trial`
checks the worker), so a late result never lands on a row another worker re-ran. Every
`RECONCILE_S` it also reconciles its search: rows of dead workers here, and rows whose stamp
is stale, on whatever host they ran, go back to the queue by the attempts rule.

Worker ids are "host:pid:start-ticks"; `is_alive` checks all three on this host (a reused
pid has another start time) and assumes workers on other hosts are alive (their heartbeats
tell when they are not).

`autoresearch worker` (servers/app/remote.py) runs one `LineageWorker` per search on one
backend, calling `confirm_step`, `run_claimed` and `housekeep` itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from evaluator_service._confirm import confirm_candidate
from evaluator_service._files import remove_tree
from evaluator_service._proc import process_start_ticks
from evaluator_service.base import Backend
from evaluator_service.models import Outcome, TrialSpec
from lineage.base import LineageStore
from lineage.exceptions import LineageError
from lineage.models import HEARTBEAT_S, LOG_TAIL_CHARS, MAX_ATTEMPTS, Trial, TrialStatus
from tasks.base import Task

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.8  # the longest wait between claims when the queue stays empty
WAIT_SLICE_S = 0.5  # how often a thread waiting on its job looks at its cancel flag
FORGET_WAIT_S = 30.0  # how long a job cancelled on the way out is waited for, so its record can go
RECONCILE_S = 2 * HEARTBEAT_S  # how often a running worker frees the rows of dead or stale workers

Materialize = Callable[[Trial, Path], Path]


def worker_id() -> str:
    """This process's worker id: host, pid and process start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_ticks(os.getpid())}"


def is_alive(worker: str) -> bool:
    """False only when `worker` ran on this host and that process is gone (or was replaced)."""
    try:
        host, pid, start = worker.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    return start.isdigit() and pid.isdigit() and process_start_ticks(int(pid)) == int(start)


class LineageWorker:
    """Evaluates one search's queued trials on a backend. See the module docstring.

    Args:
        materialize: writes a trial's snapshot into a fresh directory under `trees` (which must
            be readable where the backend runs its jobs).
        max_attempts: how often a trial may start (a dead worker or a lost run re-queues it).
    """

    def __init__(self, store: LineageStore, search_id: str, task: Task, materialize: Materialize, *,
                 backend: Backend, trees: Path, poll_s: float = 0.1, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.store, self.search_id, self.task = store, search_id, task
        self.materialize = materialize
        self.backend, self.trees = backend, Path(trees)
        self.poll_s, self.max_attempts = poll_s, max_attempts
        self.id = worker_id()
        self._running: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._abandoned = ""  # why this worker gave up what it runs (`abandon`)
        self._beat_at = self._reconciled_at = time.monotonic()

    def reconcile(self) -> list[Trial]:
        """Re-queue or fail the rows whose worker died (call before `run`)."""
        return self.store.reconcile(self.search_id, is_alive, max_attempts=self.max_attempts)

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> int:
        """Reconcile, then evaluate with one thread per slot until `stop` (or no work left).

        Returns:
            how many trials this call finished.
        """
        stop = stop or threading.Event()
        self.reconcile()
        counts: list[int] = []
        threads = [threading.Thread(target=lambda: counts.append(self._loop(stop, until_idle)),
                                    name=f"lineage-worker-{i}") for i in range(max(1, self.backend.capacity))]
        # The watcher outlives `stop`: a stopping worker claims nothing new, but a row cancelled
        # while it finishes what it runs (a deadline, say) must still have its sandbox killed.
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch_cancellations, args=(finished,), daemon=True)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        finished.set()
        stop.set()
        self.store.release_confirmations(self.search_id, lambda w: w != self.id)  # ours, if one was cut short
        return sum(counts)

    def _loop(self, stop: threading.Event, until_idle: bool) -> int:
        """Claim until `stop`; an idle thread backs off from `poll_s` to `IDLE_POLL_S`."""
        done, wait = 0, self.poll_s
        while not stop.is_set():
            if self.step() is not None:
                done, wait = done + 1, self.poll_s
            elif until_idle:
                break
            else:
                stop.wait(wait)
                wait = min(IDLE_POLL_S, wait * 2)
        return done

    def step(self) -> Trial | None:
        """Confirm a candidate keep if one waits (see `_confirm`), else claim the oldest queued
        trial, evaluate it and finish its row; None if there was nothing to do."""
        confirmed = self.confirm_step()
        if confirmed is not None:
            return confirmed
        trial = self.store.claim_trial(self.search_id, self.id)
        return None if trial is None else self.run_claimed(trial)

    def confirm_step(self) -> Trial | None:
        """Claim and confirm the search's waiting candidate keep, if any (None: none, or cut short)."""
        candidate = self.store.claim_confirmation(self.search_id, self.id)
        return None if candidate is None else confirm_candidate(self, candidate)

    def run_claimed(self, trial: Trial) -> Trial:
        """Evaluate a trial this worker claimed (`claim_trial` with `self.id`) and finish its row."""
        cancel = self.watch(trial.exp_id)
        try:
            outcome = self._evaluate(trial, cancel)
        finally:
            self.unwatch(trial.exp_id)
        if outcome.status == "cancelled" and self._abandoned:
            outcome = Outcome(status="infra_error", retry=True,
                              failure=f"worker {self.id} stopped before the trial ended: {self._abandoned}")
        try:
            return self.store.finish_trial(self.search_id, trial.exp_id, outcome, max_attempts=self.max_attempts,
                                           worker=self.id)
        except LineageError as e:  # cancelled, finished elsewhere, or re-queued for another worker
            log.info("exp %s not finished by this worker: %s", trial.exp_id, e)
            return self.store.get_trial(self.search_id, trial.exp_id)

    def abandon(self, why: str) -> None:
        """Cancel what this worker runs and hand the trials back to the queue (attempts rule)."""
        self._abandoned = why
        with self._lock:
            for cancel in self._running.values():
                cancel.set()

    def holds(self) -> list[int]:
        """The exp ids this worker runs or confirms now."""
        with self._lock:
            return sorted(self._running)

    def watch(self, exp_id: int) -> threading.Event:
        """An event set when the row is cancelled in the store while this worker runs it."""
        cancel = threading.Event()
        with self._lock:
            self._running[exp_id] = cancel
        return cancel

    def unwatch(self, exp_id: int) -> None:
        with self._lock:
            self._running.pop(exp_id, None)

    def _evaluate(self, trial: Trial, cancel: threading.Event, *, seeds: int | None = None,
                  seed_offset: int = 0, smoke: bool = True) -> Outcome:
        """Evaluate `trial`'s snapshot on the backend (with `seeds` from `seed_offset`, for a
        confirmation run); a set `cancel` cancels the job, queued or running."""
        dest = self.trees / f"{trial.exp_id}-{uuid.uuid4().hex[:8]}"
        job = None
        try:
            tree = self.materialize(trial, dest)
            spec = TrialSpec(task=self.task.name, profile=getattr(self.task, "profile", ""), tree=tree,
                             seeds=seeds or trial.seeds, gpus=trial.gpus or None, seed_offset=seed_offset,
                             smoke=smoke, search_id=self.search_id, exp_id=trial.exp_id,
                             label=f"exp {trial.exp_id} by {trial.specialist}")
            if cancel.is_set():
                return Outcome(status="cancelled", failure="cancelled before it started")
            job = self.backend.submit(spec)
            return self._await(job, cancel)
        except Exception as e:  # noqa: BLE001 - boundary: materialising or submitting failed
            return Outcome(status="infra_error", failure=f"{type(e).__name__}: {e}"[:300],
                           log_tail=traceback.format_exc()[-LOG_TAIL_CHARS:])
        finally:
            if job is not None:
                self._forget(job)
            remove_tree(dest)

    def _await(self, job: str, cancel: threading.Event) -> Outcome:
        """The job's outcome; cancels it once `cancel` is set (a cancelled job still ends)."""
        cancelled = False
        while True:
            outcome = self.backend.wait(job, timeout=WAIT_SLICE_S)
            if outcome is not None:
                return outcome
            if cancel.is_set() and not cancelled:
                self.backend.cancel(job)
                cancelled = True

    def _forget(self, job: str) -> None:
        try:
            if not self.backend.forget(job):  # still running: an exception cut the wait short
                self.backend.cancel(job)
                if self.backend.wait(job, timeout=FORGET_WAIT_S) is None or not self.backend.forget(job):
                    log.warning("backend job %s did not end within %.0f s of its cancel; the backend keeps "
                                "its record", job, FORGET_WAIT_S)
        except Exception:  # noqa: BLE001 - boundary: the record is the backend's to drop
            log.warning("backend job %s not forgotten", job, exc_info=True)

    def _watch_cancellations(self, stop: threading.Event) -> None:
        """Run `housekeep` until `stop`."""
        while not stop.wait(max(self.poll_s, 0.5)):
            self.housekeep()

    def housekeep(self) -> None:
        """One pass (call every half second or so): kill the sandbox of a row someone cancelled
        in the store, stamp held rows every `HEARTBEAT_S` (cancelling the job of a row this
        worker holds no more), and reconcile the search every `RECONCILE_S`."""
        now = time.monotonic()
        beat = now - self._beat_at >= HEARTBEAT_S
        with self._lock:
            running = dict(self._running)
        try:
            for exp_id, cancel in running.items():
                if beat and not self.store.heartbeat(self.search_id, exp_id, self.id):
                    log.warning("exp %s of %s is no longer this worker's (cancelled or re-queued): its job is "
                                "cancelled", exp_id, self.search_id)
                    cancel.set()
                elif self.store.get_trial(self.search_id, exp_id).status == TrialStatus.CANCELLED:
                    cancel.set()
            if beat:
                self._beat_at = now
            if now - self._reconciled_at >= RECONCILE_S:
                self._reconciled_at = now
                for t in self.reconcile():
                    log.warning("exp %s of %s: %s", t.exp_id, self.search_id, t.notes.rsplit("\n", 1)[-1])
        except Exception:  # noqa: BLE001 - boundary: a lost database connection must not end the watch
            log.warning("housekeeping of %s failed; retrying", self.search_id, exc_info=True)
