"""The `workers` backend: named like the others, refused without PostgreSQL, no local worker."""

from __future__ import annotations

import anyio
import pytest

from evaluator_service.local import LocalBackend
from lineage.models import SearchConfig
from lineage.state import StateDir
from servers.app.backend import BackendChoiceError, check_backend, search_backend
from servers.app.runtime import SearchRuntime
from servers.app.worker import Reconciler
from tests.remote.sleeptask import SLEEP  # noqa: F401  (the task module loads)

TASK = "tests.remote.sleeptask:SLEEP"

pytestmark = pytest.mark.timeout(60)


def test_workers_needs_a_postgresql_lineage_and_takes_no_options():
    check_backend("workers", {})  # the lineage is not known here: creating the search checks it
    with pytest.raises(BackendChoiceError, match="pass --database-url postgresql://"):
        check_backend("workers", {}, database_url="/tmp/lineage.db")
    with pytest.raises(BackendChoiceError, match="takes no options"):
        check_backend("workers", {"partition": "gpu"}, database_url="postgresql://u@h/db")
    check_backend("workers", {}, database_url="postgresql://u@h/db")


def test_a_search_on_workers_cannot_be_created_on_sqlite(tmp_path):
    with pytest.raises(ValueError, match="autoresearch worker"):
        StateDir.create(tmp_path / "s", SearchConfig(task=TASK, backend="workers"))
    assert not StateDir.exists(tmp_path / "s")


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_serving_process_of_a_workers_search_runs_no_worker_but_a_local_backend_for_jobs(tmp_path, pg_url):
    StateDir.create(tmp_path / "s", SearchConfig(task=TASK, backend="workers", roster=("opt",)),
                    database_url=pg_url).close()
    rt = SearchRuntime.open(tmp_path / "s", workers=2)

    async def serve() -> None:
        async with rt.running():
            assert isinstance(rt._worker, Reconciler)  # no worker: it only re-queues a gone worker's trials
            assert isinstance(rt.backend(), LocalBackend)

    anyio.run(serve)
    rt.close()
    backend = search_backend(SearchConfig(task=TASK, backend="workers"), tmp_path / "s", 1, rt.task)
    try:
        assert isinstance(backend, LocalBackend)
    finally:
        backend.close()


def test_init_on_workers_without_postgresql_is_refused_and_records_nothing(tmp_path):
    import re

    from typer.testing import CliRunner

    from client.cli import app

    state = tmp_path / "s"
    result = CliRunner().invoke(app, ["init", "--task", TASK, "--state", str(state), "--baseline-score", "2.0",
                                      "--backend", "workers"])
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    assert result.exit_code != 0 and "pass --database-url postgresql://" in said, result.output
    assert not state.exists()


@pytest.mark.postgres
def test_init_on_workers_with_a_postgresql_lineage_records_the_backend(tmp_path, pg_url):
    from typer.testing import CliRunner

    from client.cli import app

    state = tmp_path / "s"
    result = CliRunner().invoke(app, ["init", "--task", TASK, "--state", str(state), "--baseline-score", "2.0",
                                      "--backend", "workers", "--database-url", pg_url])
    assert result.exit_code == 0, result.output
    sd = StateDir.open(state)
    try:
        assert sd.search.config.backend == "workers" and sd.database_url == pg_url
        baseline = sd.store.get_trial(sd.search_id, 0)
        assert sd.snapshots.in_database and sd.snapshots.list_files(baseline.snapshot)
    finally:
        sd.close()


CLAIM_AND_DIE = """
import os, signal, sys
from lineage.sql import SqlLineageStore
from evaluator_service.worker import worker_id
store = SqlLineageStore(sys.argv[1])
t = store.claim_trial(sys.argv[2], worker_id())
print(t.exp_id, t.worker, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a worker host dies mid-trial
"""


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_the_serving_process_requeues_the_trial_of_a_worker_that_died_while_no_other_worker_runs(tmp_path, pg_url):
    """No worker is left to reconcile: the search's own process does, and the trial runs again
    later (its attempt counted once), instead of staying `running` until some worker starts."""
    import subprocess
    import sys
    import time

    from lineage.models import TrialStatus

    state = StateDir.create(tmp_path / "s", SearchConfig(task=TASK, backend="workers", roster=("opt",)),
                            database_url=pg_url)
    sid = state.search_id
    state.store.set_baseline(sid, 2.0, None, 1)
    exp = state.store.create_trial(sid, specialist="opt").exp_id
    state.close()
    died = subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, pg_url, sid], capture_output=True, text=True,
                          timeout=60)
    assert died.returncode == -9 and died.stdout.split()[0] == str(exp), died.stderr
    rt = SearchRuntime.open(tmp_path / "s", workers=1)
    assert rt.store.get_trial(sid, exp).status == TrialStatus.RUNNING  # nobody noticed yet

    async def serve() -> None:
        async with rt.running():
            deadline = time.monotonic() + 60
            while rt.store.get_trial(sid, exp).status == TrialStatus.RUNNING and time.monotonic() < deadline:
                await anyio.sleep(0.5)

    anyio.run(serve)
    row = rt.store.get_trial(sid, exp)
    rt.close()
    assert row.status == TrialStatus.QUEUED and row.worker is None, row
    assert row.attempts == 1 and "vanished" in row.notes, row
