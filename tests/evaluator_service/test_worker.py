"""LineageWorker against a real SQLite lineage file: claim, evaluate, finish, restart, cancel."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from evaluator_service.worker import LineageWorker, is_alive, worker_id
from lineage.models import NoiseMargin, SearchConfig, Trial, TrialStatus
from lineage.sql import SqlLineageStore
from tests.evaluator_service.conftest import TRIAL_BACKENDS

on_every_backend = pytest.mark.parametrize("trial_backend", TRIAL_BACKENDS, indirect=True)

RECIPES = {
    "good": None,
    "crash": "raise RuntimeError('bad idea')\n",
    "sleep": "import time\ntime.sleep(60)\n",
}


@pytest.fixture
def store(tmp_path):
    s = SqlLineageStore(tmp_path / "lineage.db")
    # a wide noise margin: after the first keep, a later valid trial is always "within noise"
    s.create_search("s", SearchConfig(task="toy", margin=NoiseMargin(abs_delta=100.0)))
    yield s
    s.close()


@pytest.fixture
def worker(tmp_path, store, toy, trial_backend):
    task, _ = toy(budgets={"train": 30.0})
    trees = {}
    for kind, recipe in RECIPES.items():
        trees[kind] = tmp_path / "snapshots" / kind
        shutil.copytree(task.recipe_dir(), trees[kind])
        if recipe:
            (trees[kind] / "recipe.py").write_text(recipe)

    def materialize(trial: Trial, dest: Path) -> Path:
        shutil.copytree(trees[trial.snapshot], dest)
        return dest

    return LineageWorker(store, "s", task, materialize, backend=trial_backend(task), trees=tmp_path / "trees",
                         poll_s=0.05)


def _start(worker: LineageWorker, store: SqlLineageStore, within: float) -> tuple[threading.Event, threading.Thread]:
    """Run `worker` in a thread until its stop event; return once exp 1 is running."""
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + within
    while store.get_trial("s", 1).status != TrialStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return stop, t


@on_every_backend
def test_queued_trials_are_evaluated_in_exp_order_and_finished(store, worker):
    for kind in ("good", "crash", "good"):
        store.create_trial("s", specialist="opt", snapshot=kind)
    assert worker.run(until_idle=True) == 3
    rows = store.list_trials("s", include_baseline=False)
    assert [r.status for r in rows] == [TrialStatus.KEEP, TrialStatus.CRASH, TrialStatus.DISCARD]
    assert "RuntimeError: bad idea" in rows[1].failure
    assert rows[0].timings["train"] > 0 and rows[0].metrics["accuracy"] == 1.0
    assert rows[0].started_at <= rows[1].started_at <= rows[2].started_at


@on_every_backend
def test_restart_requeues_a_trial_whose_worker_died(store, worker):
    store.create_trial("s", specialist="opt", snapshot="good")
    dead = f"{socket.gethostname()}:999999999:1"
    assert store.claim_trial("s", dead) is not None
    assert worker.run(until_idle=True) == 1
    row = store.get_trial("s", 1)
    assert row.status == TrialStatus.KEEP and row.attempts == 2 and "re-queued" in row.notes


@on_every_backend
def test_cancelling_the_row_kills_the_running_sandbox(store, worker):
    store.create_trial("s", specialist="opt", snapshot="sleep")
    stop, t = _start(worker, store, within=5)
    store.cancel_trial("s", 1, "user asked")
    deadline = time.monotonic() + 5
    while worker._running:
        assert time.monotonic() < deadline, "sandbox not killed"
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert store.get_trial("s", 1).status == TrialStatus.CANCELLED


def test_worker_ids_name_this_process():
    assert is_alive(worker_id())
    host = socket.gethostname()
    assert not is_alive(f"{host}:999999999:1")
    assert is_alive("some-other-host:1:1")  # cannot tell: assume alive


@on_every_backend
def test_a_row_cancelled_after_stop_still_has_its_sandbox_killed(store, worker):
    """Stopping the worker (no new claims) must not stop it watching what it still runs: the
    deadline cancels running rows after the stop, and their sandboxes must die then."""
    store.create_trial("s", specialist="opt", snapshot="sleep")
    stop, t = _start(worker, store, within=5)
    stop.set()  # stop claiming first, as a stopping serve process does
    time.sleep(0.3)
    store.cancel_trial("s", 1, "cut short by the deadline")
    t.join(5)
    assert not t.is_alive(), "the sleeping trial's sandbox was not killed"
    assert store.get_trial("s", 1).status == TrialStatus.CANCELLED


@on_every_backend
def test_an_idle_worker_backs_off_its_polling(store, worker):
    from sqlalchemy import event

    claims: list[float] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "FROM trial" in statement and "trial.status" in statement and "LIMIT" in statement:  # a claim's look for queued rows
            claims.append(time.monotonic())

    event.listen(store.engine, "before_cursor_execute", record)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    time.sleep(3.0)
    stop.set()
    t.join(5)
    event.remove(store.engine, "before_cursor_execute", record)
    gaps = [b - a for a, b in zip(claims, claims[1:])]
    assert 1 <= len(claims) < 15, len(claims)  # polling every 0.05 s would be about 60
    assert max(gaps) >= 0.4


@on_every_backend
def test_trials_run_as_backend_jobs_that_are_forgotten_once_finished(store, worker):
    store.create_trial("s", specialist="opt", snapshot="sleep")
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + 10
    while not [j for j in worker.backend.list() if j.state == "running"]:
        assert time.monotonic() < deadline, "the trial never became a running backend job"
        time.sleep(0.02)
    (job,) = worker.backend.list()
    assert job.label == "exp 1 by opt" and job.task == worker.task.name
    store.cancel_trial("s", 1, "user asked")
    deadline = time.monotonic() + 10
    while worker.backend.list():
        assert time.monotonic() < deadline, "the cancelled job is still known to the backend"
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert store.get_trial("s", 1).status == TrialStatus.CANCELLED


def test_a_run_the_backend_lost_is_requeued_then_finished(tmp_path, store, toy, sandbox):
    """An infra_error with retry (a preempted job, a failed node) goes back to the queue by the
    store's attempts rule and runs again; a second loss is final."""
    from evaluator_service.evaluate import evaluate
    from evaluator_service.local import LocalBackend, LocalBackendConfig
    from evaluator_service.models import Outcome
    from evaluator_service.slots import SlotPool

    task, _ = toy(budgets={"train": 30.0})
    losses = {"left": 1}

    def run(spec, lease, cancel):  # the real evaluation, after the first job is "lost"
        if losses["left"]:
            losses["left"] -= 1
            return Outcome(status="infra_error", failure="node failed", retry=True)
        return evaluate(task, spec, sandbox=sandbox, data_dirs=backend.data_dirs(task), lease=lease, cancel=cancel)

    backend = LocalBackend(LocalBackendConfig(workdir=tmp_path / "work", data_root=tmp_path / "bdata"),
                           tasks=lambda _n, _p="": task, pool=SlotPool([], cpu_slots=1), sandbox=sandbox, run=run)
    try:
        materialize = lambda trial, dest: shutil.copytree(task.recipe_dir(), dest) and dest  # noqa: E731
        worker = LineageWorker(store, "s", task, materialize, backend=backend, trees=tmp_path / "trees", poll_s=0.05)
        store.create_trial("s", specialist="opt")
        assert worker.run(until_idle=True) == 2  # the lost attempt, then the real one
        row = store.get_trial("s", 1)
        assert row.status == TrialStatus.KEEP and row.attempts == 2
        assert "re-queued: the infrastructure lost attempt 1 (node failed)" in row.notes
        losses["left"] = 2
        store.create_trial("s", specialist="opt")
        worker.run(until_idle=True)
        row = store.get_trial("s", 2)
        assert row.status == TrialStatus.INFRA_ERROR and row.failure == "node failed" and row.attempts == 2
    finally:
        backend.close()


@pytest.mark.timeout(60)
@on_every_backend
def test_a_worker_whose_row_was_rerun_elsewhere_cancels_its_job_and_drops_its_result(store, worker):
    """Another host re-queued the row (its heartbeat looked stale) and claimed it: this worker's
    next heartbeat finds the row no longer its own, kills the sandbox, and finishes nothing."""
    from lineage.models import HEARTBEAT_S

    store.create_trial("s", specialist="opt", snapshot="sleep")
    stop, t = _start(worker, store, within=10)
    time.sleep(0.2)
    assert [r.exp_id for r in store.reconcile("s", lambda w: True, stale_s=0.1)] == [1]  # as another host would
    assert store.claim_trial("s", "other-host:1:1").exp_id == 1
    deadline = time.monotonic() + HEARTBEAT_S + 5
    while worker.holds():
        assert time.monotonic() < deadline, "the sandbox of a row rerun elsewhere was not killed"
        time.sleep(0.05)
    stop.set()
    t.join(10)
    row = store.get_trial("s", 1)
    assert (row.status, row.worker, row.attempts) == (TrialStatus.RUNNING, "other-host:1:1", 2)
    assert "re-queued" in row.notes


class _FlakyWait:
    """The worker's backend, whose `wait` fails once while the job runs: a scheduler query that
    broke (sacct timing out, say). Everything else is the real backend's."""

    def __init__(self, backend) -> None:  # type: ignore[no-untyped-def]
        self.backend, self.failed = backend, False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.backend, name)

    def wait(self, job_id: str, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if not self.failed and self.backend.get(job_id).state == "running":
            self.failed = True
            raise OSError("the scheduler did not answer")
        return self.backend.wait(job_id, timeout)


def test_a_job_left_running_by_a_failed_wait_is_cancelled_and_forgotten(store, worker):
    """The trial is an infra_error (the run's fate is unknown), its job is cancelled rather than
    left running unobserved, and its record does not stay in the backend."""
    worker.backend = flaky = _FlakyWait(worker.backend)
    store.create_trial("s", specialist="opt", snapshot="sleep")
    assert worker.run(until_idle=True) >= 1
    assert flaky.failed
    row = store.get_trial("s", 1)
    assert row.status == TrialStatus.INFRA_ERROR, row  # the run's fate is unknown: not scored, not retried blindly
    assert "the scheduler did not answer" in row.failure, row
    assert flaky.backend.list() == []  # cancelled, waited for, and forgotten
