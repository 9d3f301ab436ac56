"""`RemoteWorker` in this process: several searches, one atomic claim across them, confirmation."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from evaluator_service.slots import SlotPool
from lineage.models import NoiseMargin, SearchConfig, TrialStatus
from lineage.sql import SqlLineageStore
from lineage.state import StateDir
from servers.app.remote import RemoteWorker
from tests.remote.sleeptask import recipe

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TASK = "tests.remote.sleeptask:SLEEP"


def _queue(sd: StateDir, tmp: Path, sleep_s: float, tag: str) -> int:
    tree = tmp / tag
    tree.mkdir()
    (tree / "recipe.py").write_text(recipe(sleep_s, tag=tag))
    return sd.store.create_trial(sd.search_id, specialist="opt", snapshot=sd.snapshots.put_tree(tree)).exp_id


@pytest.mark.timeout(180)
def test_a_remote_worker_serves_every_workers_search_and_confirms_a_candidate(tmp_path: Path, pg_url: str) -> None:
    confirmed = SearchConfig(task=TASK, backend="workers", roster=("opt",), confirm_runs=2,
                             margin=NoiseMargin(abs_delta=0.5))
    a = StateDir.create(tmp_path / "a", confirmed, database_url=pg_url)
    b = StateDir.create(tmp_path / "b", confirmed.model_copy(update={"confirm_runs": 0}), database_url=pg_url)
    slow = _queue(a, tmp_path, 2.5, "a-slow")
    other = _queue(b, tmp_path, 0.1, "b-1")
    store = SqlLineageStore(pg_url)
    finished = []
    worker = RemoteWorker(store, tmp_path / "work", SlotPool([], cpu_slots=1, lock_dir=tmp_path / "locks"),
                          on_finish=finished.append)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while len([t for t in finished if t.status.is_finished()]) < 2:
            assert time.monotonic() < deadline, finished
            time.sleep(0.1)
        assert [(t.search_id, t.exp_id) for t in finished] == [("a", slow), ("b", other)]  # oldest first
        fast = _queue(a, tmp_path, 0.1, "a-fast")  # beats exp 1 by ~2.4 s: a candidate, then confirmed
        while a.store.get_trial("a", fast).status != TrialStatus.KEEP:
            assert time.monotonic() < deadline, a.store.get_trial("a", fast)
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(60)
        worker.close()
        store.close()
    row = a.store.get_trial("a", fast)
    assert row.metrics["confirmation"]["pairs"] == 2 and len(a.store.confirmation_runs("a", fast)) == 4
    assert a.store.get_search("a").best_exp_id == fast
    assert {t.worker for t in a.store.list_trials("a", include_baseline=False)} == {worker.id}
    a.close()
    b.close()
