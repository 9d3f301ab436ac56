"""`tests.remote.sleeptask:SLEEP`: a toy task whose trials sleep, for workers in other processes.

A worker resolves a search's task by name, so the task must be importable by a dotted path:
each process builds its own copy (files in a temp dir). A trial's recipe sleeps as long as its
`SLEEP_S` line says, then writes the toy task's predictions (see `recipe`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tests.evaluator_service.toytask import GOOD_RECIPE, ToyTask

_TASKS: dict[str, ToyTask] = {}


def recipe(sleep_s: float, tag: str = "") -> str:
    """A recipe that sleeps `sleep_s` seconds (`tag` makes each trial's snapshot distinct)."""
    return f"import time\nSLEEP_S = {sleep_s!r}  # {tag}\ntime.sleep(SLEEP_S)\n" + GOOD_RECIPE


def __getattr__(name: str) -> ToyTask:
    if name != "SLEEP":
        raise AttributeError(name)
    if name not in _TASKS:
        root = Path(tempfile.mkdtemp(prefix="ar-sleep-task-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _TASKS[name] = ToyTask(root, recipe(0.1), budgets={"train": 300.0}, min_accuracy=0.5,
                               name="tests.remote.sleeptask:SLEEP")
    return _TASKS[name]
