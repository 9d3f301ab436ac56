"""Task names -> task objects, imported lazily by string.

`get_task("digits-speedrun")` imports `tasks.digits_speedrun.task` and returns its `TASK`;
`get_task("my_pkg.my_task:TASK")` does the same for a task that lives outside this package,
and remembers it under its own name for this process (so a TrialSpec naming "my_task" later
resolves to the same object).
Adding a task = one folder under tasks/ plus one line in TASKS.
"""

from __future__ import annotations

import importlib
from typing import Any

from tasks.base import Task, parse_tunables
from tasks.exceptions import UnknownTaskError

TASKS: dict[str, str] = {
    "digits-speedrun": "tasks.digits_speedrun.task:TASK",
    "tiny-golf": "tasks.tiny_golf.task:TASK",
}


_LOADED: dict[str, Task] = {}


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task registered as `name`, or the object at a dotted "module:ATTR" path.

    Raises:
        UnknownTaskError: `name` is not registered, cannot be imported, or is not a Task.
    """
    spec = TASKS.get(name)
    if spec is None and name in _LOADED:
        return _LOADED[name]
    if spec is None and ":" not in name:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())} "
                               "(or give a dotted 'module:ATTR' path)")
    module_name, _, attr = (spec or name).partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownTaskError(f"cannot load task {name!r} from {spec or name!r}: {e}") from e
    if not isinstance(obj, Task):
        raise UnknownTaskError(f"{spec or name!r} is a {type(obj).__name__}, not a Task")
    if spec is None:
        _LOADED.setdefault(obj.name, obj)
    return obj


def describe_task(task: Task) -> dict[str, Any]:
    """Plain data about a task, for `autoresearch tasks show` and other listings."""
    entry = task.recipe_dir() / task.entrypoint
    tunables = parse_tunables(entry.read_text()) if entry.is_file() else []
    return {
        "name": task.name,
        "description": task.description,
        "metric": task.metric.model_dump(),
        "editable": list(task.editable),
        "entrypoint": task.entrypoint,
        "limits": task.limits.model_dump(),
        "run_plan": task.run_plan.model_dump(),
        "resources": task.resources.model_dump(),
        "calibration_seeds": task.calibration_seeds,
        "roster": [{"name": r.name, "title": r.title, "scope": r.scope} for r in task.roster()],
        "knowledge": sorted(task.knowledge()),
        "tunables": [t.model_dump() for t in tunables],
        "recipe_dir": str(task.recipe_dir()),
    }
