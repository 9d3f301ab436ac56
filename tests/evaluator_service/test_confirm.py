"""Confirmation of candidate keeps, through a real LineageWorker, sandboxes and a SQLite file.

A candidate is re-run against the best, interleaved, and kept only if the paired improvement
beats the margin at the search's level: a real improvement passes, pure noise does not, and a
worker killed mid-confirmation is resumed by the next without losing or repeating a run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluator_service.worker import LineageWorker
from lineage.models import NoiseMargin, Outcome, SearchConfig, Trial, TrialStatus
from lineage.sql import SqlLineageStore

PREDS = "import json\njson.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n"
RECIPES = {
    "slow": "import time\ntime.sleep(0.8)\n" + PREDS,
    "fast": PREDS,
    # pure noise: the same code, now and then a lucky fast run
    "noise": "import random, time\ntime.sleep(0.05 if random.random() < 0.15 else 0.35)\n" + PREDS,
    "crash": "raise SystemExit('broken on re-run')\n",
}


def _worker(tmp_path, store, toy, trial_backend, sid="s") -> LineageWorker:
    task, _ = toy(budgets={"train": 20.0})
    trees = {}
    for kind, recipe in RECIPES.items():
        trees[kind] = tmp_path / "snapshots" / kind
        shutil.copytree(task.recipe_dir(), trees[kind])
        (trees[kind] / "recipe.py").write_text(recipe)

    def materialize(trial: Trial, dest: Path) -> Path:
        shutil.copytree(trees[trial.snapshot], dest)
        return dest

    return LineageWorker(store, sid, task, materialize, backend=trial_backend(task), trees=tmp_path / "trees",
                         poll_s=0.05)


@pytest.fixture
def store(tmp_path):
    s = SqlLineageStore(tmp_path / "lineage.db")
    yield s
    s.close()


def _search(store, baseline: str, score: float, spread: float, k: int = 3, margin: float = 0.1) -> None:
    store.create_search("s", SearchConfig(task="toy", confirm_runs=k, margin=NoiseMargin(abs_delta=margin)))
    store.set_baseline("s", score, spread, 5, snapshot=baseline)


@pytest.mark.timeout(60)
def test_a_real_improvement_is_confirmed_in_interleaved_order(tmp_path, store, toy, trial_backend):
    _search(store, "slow", 0.9, 0.05)
    worker = _worker(tmp_path, store, toy, trial_backend)
    store.create_trial("s", specialist="opt", snapshot="fast")
    assert worker.run(until_idle=True) == 2  # the trial, then its confirmation
    t = store.get_trial("s", 1)
    assert t.status == TrialStatus.KEEP and t.decision.startswith("confirmed: paired improvement")
    assert store.get_search("s").best_exp_id == 1
    runs = store.confirmation_runs("s", 1)
    assert [r.arm for r in runs] == ["candidate", "best"] * 3
    assert [r.seed for r in runs] == [100_000, 100_000, 100_001, 100_001, 100_002, 100_002]
    c = t.metrics["confirmation"]
    assert c["pairs"] == 3 and c["lower"] > 0.1 and c["ref_exp"] == 0 and len(c["runs"]) == 6


@pytest.mark.timeout(60)
def test_a_candidate_that_fails_its_re_run_is_not_confirmed(tmp_path, store, toy, trial_backend):
    _search(store, "slow", 0.9, 0.05, k=2)
    worker = _worker(tmp_path, store, toy, trial_backend)
    store.create_trial("s", specialist="opt", snapshot="fast")
    assert store.claim_trial("s", "other") is not None
    store.finish_trial("s", 1, Outcome(status="valid", score=0.2))  # as if it had run
    trees = tmp_path / "snapshots"
    shutil.copytree(trees / "crash", trees / "fast", dirs_exist_ok=True)  # now it breaks
    assert worker.run(until_idle=True) == 1
    t = store.get_trial("s", 1)
    assert t.status == TrialStatus.DISCARD and "not confirmed: its re-run with seed 100000 ended crash" in t.decision
    assert store.get_search("s").best_exp_id == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_pure_noise_crosses_the_margin_but_is_never_confirmed(tmp_path, store, toy, trial_backend):
    """The issue's case: a calibration run back to back understates the trial-to-trial noise,
    so lucky runs of unchanged code cross the default two-spread margin; none is confirmed."""
    from evaluator_service.models import TrialSpec

    worker = _worker(tmp_path, store, toy, trial_backend)
    job = worker.backend.submit(TrialSpec(task="toy", tree=tmp_path / "snapshots" / "slow"))
    unlucky = worker.backend.wait(job).score  # 0.8 s of sleep + overhead
    typical = unlucky - 0.8 + 0.305  # the noise recipe's mean: 0.35 s mostly, 0.05 s one time in seven
    store.create_search("s", SearchConfig(task="toy", confirm_runs=5, margin=NoiseMargin(sigmas=2.0)))
    store.set_baseline("s", typical, 0.02, 5, snapshot="noise")  # an understated spread
    for _ in range(50):
        store.create_trial("s", specialist="opt", snapshot="noise")
    worker.run(until_idle=True)
    rows = store.list_trials("s", include_baseline=False)
    candidates = [t for t in rows if "confirmation" in t.metrics]
    print(f"\n50 noise trials: {len(candidates)} crossed the margin, "
          f"{sum(t.status == TrialStatus.KEEP for t in rows)} confirmed")
    assert len(rows) == 50 and all(t.status.is_finished() for t in rows)
    assert len(candidates) >= 2
    assert [t.exp_id for t in rows if t.status == TrialStatus.KEEP] == []
    assert all(t.decision.startswith("not confirmed") for t in candidates)


WORKER_SCRIPT = """\
import shutil, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.sandbox import Sandbox, SandboxConfig
from evaluator_service.slots import SlotPool
from evaluator_service.worker import LineageWorker
from lineage.sql import SqlLineageStore
from tests.evaluator_service.toytask import ToyTask

tmp = Path({tmp!r})
task = ToyTask(tmp / "task", budgets={{"train": 20.0}})
materialize = lambda trial, dest: shutil.copytree(tmp / "snapshots" / trial.snapshot, dest) and dest
backend = LocalBackend(LocalBackendConfig(workdir=tmp / "work2", data_root=tmp / "data2"),
                       tasks=lambda _n, _p="": task, pool=SlotPool([], cpu_slots=1),
                       sandbox=Sandbox(SandboxConfig(workdir=tmp / "work2", uid_base=63000)))
LineageWorker(SqlLineageStore(tmp / "lineage.db"), "s", task, materialize, backend=backend,
              trees=tmp / "trees2", poll_s=0.05).run()
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_killed_mid_confirmation_is_resumed_without_loss_or_repeat(tmp_path, store, toy, trial_backend):
    from tests.conftest import REPO

    _search(store, "slow", 0.9, 0.05, k=3)
    worker = _worker(tmp_path, store, toy, trial_backend)  # writes the snapshots the child reads too
    store.create_trial("s", specialist="opt", snapshot="fast")
    child = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT.format(repo=str(REPO), tmp=str(tmp_path))])
    try:
        deadline = time.monotonic() + 60
        while len(store.confirmation_runs("s", 1)) < 2:
            assert time.monotonic() < deadline and child.poll() is None, "no confirmation run recorded"
            time.sleep(0.05)
        child.kill()  # SIGKILL, mid-confirmation
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    recorded = len(store.confirmation_runs("s", 1))
    assert store.get_trial("s", 1).status == TrialStatus.CONFIRMING and 2 <= recorded < 6
    worker.run(until_idle=True)
    t = store.get_trial("s", 1)
    runs = store.confirmation_runs("s", 1)
    assert t.status == TrialStatus.KEEP and "confirmation resumed" in t.notes
    assert [r.idx for r in runs] == list(range(6))  # every planned run once: none lost, none repeated
