"""CPU time of the whole sandboxed tree: measured, scored and budgeted by the evaluator.

A recipe cannot hide CPU time in a detached daemon, a grandchild or a thread; CPU budgets kill
on CPU seconds and not on wall seconds (a sleeping run is not an overrun), with a wall backstop.
Both measurement paths are exercised: a cgroup per run, and the reaper alone (no cgroup).
"""

from __future__ import annotations

import pytest

from evaluator_service.sandbox import Sandbox
from tests.evaluator_service.conftest import run

PREDS = "import json\njson.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n"

BURN = """\
import time
def burn(seconds):
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass
"""

HIDDEN_WORK = BURN + """\
import os, time
if os.fork() == 0:              # a detached daemon does the work, then outlives the trial
    os.setsid()
    if os.fork() == 0:
        burn(1.0)
        open("done", "w").close()
        time.sleep(300)
    os._exit(0)
while not os.path.exists("done"):
    time.sleep(0.02)
""" + PREDS


@pytest.fixture(params=["cgroup", "reaper-only"])
def any_sandbox(request, sandbox: Sandbox) -> Sandbox:
    if request.param == "cgroup":
        if sandbox.cgroup_parent is None:
            pytest.skip("no writable cgroup-v2 here")
        return sandbox
    return Sandbox(sandbox.config.model_copy(update={"use_cgroup": False}))


def test_cpu_of_a_detached_daemon_is_counted(toy, any_sandbox):
    task, data = toy(HIDDEN_WORK)
    out = run(task, data, any_sandbox)
    assert out.status == "valid", out
    assert out.timings["train_cpu"] >= 1.0


def test_cpu_of_threads_and_children_is_counted(toy, any_sandbox):
    recipe = BURN + """\
import subprocess, sys, threading
t = threading.Thread(target=burn, args=(0.5,))
t.start()
subprocess.run([sys.executable, "-c", "import time\\nt = time.process_time()\\n"
                "while time.process_time() - t < 0.5: pass"], check=True)
t.join()
""" + PREDS
    task, data = toy(recipe)
    out = run(task, data, any_sandbox)
    assert out.status == "valid", out
    assert out.timings["train_cpu"] >= 1.0


def test_cpu_budget_kills_on_cpu_seconds(toy, any_sandbox):
    task, data = toy(BURN + "burn(30)\n" + PREDS, budgets={"train": 1.0},
                     limits={"budget_clock": "cpu"})
    out = run(task, data, any_sandbox)
    assert out.status == "train_budget_overrun"
    assert "1 CPU-second budget" in out.failure
    assert out.timings["train"] < 3.0


def test_sleeping_is_not_an_overrun_on_a_cpu_budget_but_the_backstop_holds(toy, sandbox):
    task, data = toy("import time\ntime.sleep(1.5)\n" + PREDS, budgets={"train": 1.0},
                     limits={"budget_clock": "cpu", "wall_backstop": 3.0})
    assert run(task, data, sandbox).status == "valid"
    task, data = toy("import time\ntime.sleep(30)\n" + PREDS, budgets={"train": 1.0},
                     limits={"budget_clock": "cpu", "wall_backstop": 2.0})
    out = run(task, data, sandbox)
    assert out.status == "train_budget_overrun"
    assert 2.0 <= out.timings["train"] < 3.5
