"""Many processes on one store, and processes killed mid-write: nothing lost or duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lineage.models import SearchConfig
from lineage.sql import SqlLineageStore

REPO = Path(__file__).resolve().parents[2]
CFG = SearchConfig(task="toy")


def _spawn(url: str, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lineage._writer", str(url), "s", name, str(count)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _hammer(url, procs: int, per_proc: int) -> None:
    store = SqlLineageStore(url)
    store.create_search("s", CFG)
    children = [_spawn(url, f"p{i}", per_proc) for i in range(procs)]
    outputs = [c.communicate(timeout=600) for c in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-2000:]
        assert "locked" not in err and "Traceback" not in err
    total = procs * per_proc
    counts = store.count_trials("s")
    assert sum(counts.values()) == total and set(counts) <= {"keep", "discard"}
    rows = store.list_trials("s")
    assert sorted(t.exp_id for t in rows) == list(range(1, total + 1))
    for i in range(procs):
        mine = [t for t in rows if t.specialist == f"p{i}"]
        assert sorted(t.metrics["i"] for t in mine) == list(range(per_proc))
        reported = sorted(int(x) for x in outputs[i][0].split())
        assert reported == sorted(t.exp_id for t in mine)
    assert store.get_search("s").next_exp_id == total + 1
    store.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eight_processes_write_500_trials_each_into_one_sqlite_file(tmp_path):
    _hammer(tmp_path / "lineage.db", procs=8, per_proc=500)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eight_processes_write_500_trials_each_into_postgresql(pg_url):
    _hammer(pg_url, procs=8, per_proc=500)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_mid_recording_leaves_the_store_consistent(tmp_path):
    url = tmp_path / "lineage.db"
    store = SqlLineageStore(url)
    store.create_search("s", CFG)
    for round_ in range(6):
        child = _spawn(url, f"k{round_}", 100_000)
        # kill it mid-recording: once it writes (its start-up alone takes about a second on a
        # loaded machine, so a fixed sleep could kill it before it wrote anything), a little later
        deadline = time.monotonic() + 60
        while not store.list_trials("s", specialists=[f"k{round_}"], limit=1):
            assert child.poll() is None and time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.02)
        time.sleep(0.05 * round_)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    with sqlite3.connect(url) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = store.list_trials("s")
    next_id = store.get_search("s").next_exp_id
    # every allocated id has its row (allocation and insert share one transaction)
    assert sorted(t.exp_id for t in rows) == list(range(1, next_id))
    assert len(rows) > 0
    # a killed writer leaves at most one running row per round, which reconcile finishes
    stuck = [t for t in rows if t.status.value in ("queued", "running")]
    assert len(stuck) <= 6
    store.reconcile("s", lambda worker: False, max_attempts=1)
    assert not store.list_trials("s", statuses=["running"])
    exp = store.create_trial("s", specialist="after").exp_id
    assert exp == next_id
