"""The registered tasks through the real evaluator: calibration runs end to end, hidden data.

The calibration tests evaluate each task's starting recipe twice (two calibration runs, one
seed each where the task has seeds) in real sandboxes and check that every run is valid and
scored, then that mean and spread come out. The hidden-data tests check that the routes to
each task's held-out data that exist on a developer machine are closed inside the sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tasks
from evaluator_service.calibrate import calibrate_on
from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.slots import SlotPool
from tasks.registry import get_task

pytestmark = pytest.mark.slow


def _calibrate(name: str, tmp_path: Path, sandbox) -> tuple[object, list[Outcome]]:
    task = get_task(name)
    backend = LocalBackend(LocalBackendConfig(workdir=tmp_path / "work", data_root=tmp_path / "data"),
                           tasks=lambda _n, _p="": task, pool=SlotPool([], cpu_slots=1), sandbox=sandbox)
    outcomes: list[Outcome] = []
    try:
        cal = calibrate_on(backend, task, 2, seeds_per_run=1, on_outcome=lambda _i, o: outcomes.append(o))
    finally:
        backend.close()
    return cal, outcomes


@pytest.mark.timeout(180)
def test_digits_speedrun_evaluates_and_calibrates(tmp_path, sandbox):
    cal, outcomes = _calibrate("digits-speedrun", tmp_path, sandbox)
    for o in outcomes:
        assert o.status == "valid", (o.failure, o.log_tail)
        # scored on the CPU clock: the train phase's CPU seconds, with its wall time beside them
        assert o.score == pytest.approx(o.timings["train_cpu"], abs=1e-5) and o.metrics["accuracy"] >= 0.96
        assert o.timings["train"] > 0
    assert cal.n == 2 and cal.spread is not None


@pytest.mark.timeout(600)
def test_tiny_golf_evaluates_and_calibrates(tmp_path, sandbox):
    cal, outcomes = _calibrate("tiny-golf", tmp_path, sandbox)
    for o in outcomes:
        assert o.status == "valid", (o.failure, o.log_tail)
        assert o.score is not None and 0 < o.artifact_bytes <= 400_000 and "eval" in o.timings
    assert cal.n == 2 and cal.spread is not None


def _hunt(tmp_path: Path, sandbox, name: str, recipe: str) -> Outcome:
    task = get_task(name)
    tree = tmp_path / "tree"
    tree.mkdir()
    for f in task.recipe_dir().iterdir():
        if f.is_file():
            (tree / f.name).write_bytes(f.read_bytes())
    (tree / task.entrypoint).write_text(recipe)
    data = prepare_data(task, tmp_path / "data")
    return evaluate(task, TrialSpec(task=name, tree=tree, seeds=1), sandbox=sandbox, data_dirs=data)


@pytest.mark.timeout(60)
def test_digits_labels_are_not_reachable_through_sklearn(tmp_path, sandbox):
    out = _hunt(tmp_path, sandbox, "digits-speedrun",
                "from sklearn.datasets import load_digits\nprint(load_digits().target[:5])\n")
    assert out.status == "preflight_crash", out  # the smoke phase already fails
    assert "digits.csv.gz" in out.failure and "Error" in out.failure  # masked: unreadable


@pytest.mark.timeout(60)
def test_golf_corpus_is_not_reachable_through_the_repository(tmp_path, sandbox):
    corpus = Path(tasks.__file__).parent / "tiny_golf" / "data" / "devil.txt.gz"
    out = _hunt(tmp_path, sandbox, "tiny-golf", f"print(open({str(corpus)!r}, 'rb').read()[:10])\n")
    assert out.status == "preflight_crash" and "FileNotFoundError" in out.failure


NGRAM_ARTIFACT = '''\
import os, sys
data = os.environ.get("AR_DATA", "/data")
train = open(os.path.join(data, "train.bin"), "rb").read()  # a model built at answer time
sys.stderr.write("read %d training bytes\\n" % len(train))
'''


@pytest.mark.timeout(120)
def test_golf_artifact_cannot_read_the_training_data_at_eval_time(tmp_path, sandbox):
    """A few-KB artifact that builds an n-gram model from train.bin when asked beat the
    starting recipe by a wide margin while the eval sandbox bound the public data."""
    recipe = ("import os\nos.makedirs('artifact', exist_ok=True)\n"
              f"open('artifact/run.py', 'w').write({NGRAM_ARTIFACT!r})\n")
    out = _hunt(tmp_path, sandbox, "tiny-golf", recipe)
    assert out.status == "crash", out
    assert "train.bin" in out.failure and "FileNotFoundError" in out.failure
    assert "training bytes" not in out.log_tail
