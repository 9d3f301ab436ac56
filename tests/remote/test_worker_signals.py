"""`autoresearch worker` on this host: SIGTERM hands a running trial back; bad values are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from client.cli_worker import parse_gpus
from lineage.models import NoiseMargin, SearchConfig, TrialStatus
from lineage.state import StateDir
from tests.conftest import REPO
from tests.remote.sleeptask import recipe

TASK = "tests.remote.sleeptask:SLEEP"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_sigterm_past_the_grace_hands_the_running_trial_back_to_the_queue(tmp_path: Path, pg_url: str) -> None:
    sd = StateDir.create(tmp_path / "s", SearchConfig(task=TASK, backend="workers", roster=("opt",),
                                                      margin=NoiseMargin(abs_delta=1e9)), database_url=pg_url)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "recipe.py").write_text(recipe(60.0))
    sd.store.create_trial(sd.search_id, specialist="opt", snapshot=sd.snapshots.put_tree(tmp_path / "tree"))
    env = {**os.environ, "AR_SLOT_LOCK_DIR": str(tmp_path / "locks"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", "worker", "--database-url", pg_url, "--slots", "1",
                             "--grace", "1", "--work-dir", str(tmp_path / "work"), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while sd.store.get_trial(sd.search_id, 1).status != TrialStatus.RUNNING:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert time.monotonic() - started < 15  # not the trial's 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    row = sd.store.get_trial(sd.search_id, 1)
    assert (row.status, row.worker, row.attempts) == (TrialStatus.QUEUED, None, 1)
    assert "stopped before the trial ended" in row.notes and "--grace 1s passed" in row.notes
    assert json.loads(out.splitlines()[-1])["status"] == "queued"
    sd.close()


@pytest.mark.timeout(60)
def test_bad_values_are_refused_with_what_to_give() -> None:
    assert parse_gpus("0-3,6") == ["0", "1", "2", "3", "6"]
    for bad in ("x", "3-1", "0,0", ""):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)
    cases = [(["--database-url", "sqlite:///x.db"], "through PostgreSQL; give postgresql://"),
             (["--database-url", "postgresql://u@h/db", "--gpus", "0", "--slots", "2"], "not both"),
             (["--database-url", "postgresql://u@h/db", "--slots", "0"], "--slots 0: give at least 1"),
             (["--database-url", "postgresql://u@h/db", "--grace", "-1"], "give 0 or more seconds")]
    for args, said in cases:
        result = CliRunner().invoke(app, ["worker", *args])
        assert result.exit_code == 2 and said in " ".join(result.output.split()), (args, result.output)


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_search_named_with_search_that_it_cannot_serve_is_skipped_with_the_reason(tmp_path: Path,
                                                                                  pg_url: str) -> None:
    from evaluator_service.slots import SlotPool
    from lineage.sql import SqlLineageStore
    from servers.app.remote import RemoteWorker

    StateDir.create(tmp_path / "here", SearchConfig(task=TASK, roster=("opt",)), database_url=pg_url).close()
    StateDir.create(tmp_path / "gone", SearchConfig(task="no-such-task", backend="workers"), database_url=pg_url).close()
    store = SqlLineageStore(pg_url)
    worker = RemoteWorker(store, tmp_path / "work", SlotPool([], cpu_slots=1, lock_dir=tmp_path / "locks"),
                          searches=["here", "gone", "typo"])
    try:
        assert worker.discover() == []
        assert "on the 'local' backend, not on workers" in worker.skipped["here"]
        assert "UnknownTaskError" in worker.skipped["gone"] and "no-such-task" in worker.skipped["gone"]
        assert worker.skipped["typo"].startswith("no such search")
    finally:
        worker.close()
        store.close()
