"""`evaluate`: one trial end to end, and every way it can end."""

from __future__ import annotations

import threading

from evaluator_service.evaluate import evaluate
from evaluator_service.models import TrialSpec
from tests.evaluator_service.conftest import run

CRASH = """\
import json, os

def train(xs):
    return [x / 0 for x in xs]

xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
train(xs)
"""


def test_valid_trial_is_scored_by_the_harness(toy, sandbox):
    task, data = toy(seeds=2)
    out = run(task, data, sandbox)
    assert out.status == "valid", out
    assert out.metrics["accuracy"] == 1.0
    assert out.score == out.metrics["train_s"] > 0
    # wall seconds per phase, and the CPU seconds of each phase's whole tree beside them
    assert set(out.timings) == {"train", "train_cpu", "score", "score_cpu", "total"}
    assert 0 < out.timings["train_cpu"] and 0 < out.timings["score_cpu"]
    assert out.seeds == 2 and not out.self_reported and not out.unisolated


def test_each_seed_is_a_cold_process_with_its_own_seed(toy, sandbox):
    recipe = """\
import json, os
json.dump([int(os.environ["AR_SEED"]) % 2] * 20, open("preds.json", "w"))
"""
    task, data = toy(recipe, seeds=2, min_accuracy=0.0)
    out = run(task, data, sandbox)
    # seed 0 predicts all zeros, seed 1 all ones: each half right
    assert out.status == "valid" and out.metrics["accuracy"] == 0.5


def test_crash_reports_last_error_and_recipe_frame(toy, sandbox):
    task, data = toy(CRASH)
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert out.failure == "train (seed 0): ZeroDivisionError: division by zero (at recipe.py:4 in <listcomp>)"
    assert "Traceback" in out.log_tail


def test_syntax_error_is_a_preflight_crash_without_running(toy, sandbox):
    task, data = toy("def broken(:\n")
    out = run(task, data, sandbox)
    assert out.status == "preflight_crash"
    assert "recipe.py:1" in out.failure
    assert "train" not in out.timings


def test_failing_smoke_phase_is_a_preflight_crash(toy, sandbox):
    recipe = "import os, sys\nif os.environ['AR_SMOKE'] == '1': sys.exit('smoke broke')\n"
    task, data = toy(recipe, smoke=True)
    out = run(task, data, sandbox)
    assert out.status == "preflight_crash" and "smoke broke" in out.failure


def test_train_overrun(toy, sandbox):
    task, data = toy("import time\ntime.sleep(60)\n", budgets={"train": 0.5})
    out = run(task, data, sandbox)
    assert out.status == "train_budget_overrun"
    assert 0.5 <= out.timings["train"] < 1.5
    assert "0.5 s budget" in out.failure


def test_harness_error_becomes_infra_error(toy, sandbox):
    task, data = toy(budgets={"eval": 1.0})  # no budget for the 'train' phase
    out = run(task, data, sandbox)
    assert out.status == "infra_error"
    assert "TaskConfigError" in out.failure and "Traceback" in out.log_tail


def test_cancel_kills_a_running_trial(toy, sandbox):
    task, data = toy("import time\ntime.sleep(60)\n", budgets={"train": 30.0})
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox, data_dirs=data, cancel=cancel)
    assert out.status == "cancelled" and out.timings["train"] < 2


def test_seed_offset_changes_what_the_recipe_sees(toy, sandbox):
    recipe = "import json, os\njson.dump([int(os.environ['AR_SEED']) % 2] * 20, open('preds.json', 'w'))\n"
    task, data = toy(recipe, min_accuracy=0.0)
    assert run(task, data, sandbox, seed_offset=1).metrics["accuracy"] == 0.5
    assert run(task, data, sandbox, seed_offset=0).metrics["accuracy"] == 0.5


def test_work_dir_is_cleaned_up(toy, sandbox):
    task, data = toy()
    run(task, data, sandbox)
    assert list((sandbox.config.workdir / "jobs").iterdir()) == []
