"""Task names -> task objects, imported lazily by string.

`get_task("digits-speedrun")` imports `tasks.digits_speedrun.task` and returns its `TASK`;
`get_task("my_pkg.my_task:TASK")` does the same for a task that lives outside this package,
and remembers it under its own name for this process (so a TrialSpec naming "my_task" later
resolves to the same object).
Adding a task = one folder under tasks/ plus one line in TASKS.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks._prepare import Plan, PrepareStatus, require_prepared, status, task_root, use_task_root
from tasks.base import Profile, Task, parse_tunables
from tasks.exceptions import TaskSettingsError, UnknownTaskError

TASKS: dict[str, str] = {
    "cifar-airbench96": "tasks.cifar_airbench96.task:TASK",
    "digits-speedrun": "tasks.digits_speedrun.task:TASK",
    "nanochat-d12": "tasks.nanochat_d12.task:TASK",
    "parameter-golf": "tasks.parameter_golf.task:TASK",
    "tiny-golf": "tasks.tiny_golf.task:TASK",
}


_LOADED: dict[str, Task] = {}


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return sorted(TASKS)


def get_task(name: str, profile: str = "") -> Task:
    """The task registered as `name`, or the object at a dotted "module:ATTR" path.

    With `profile`, the task as that profile changes it (see `with_profile`).

    Raises:
        UnknownTaskError: `name` is not registered, cannot be imported, or is not a Task, or
            it has no profile `profile`.
    """
    task = _get_task(name)
    return with_profile(task, profile) if profile else task


def task_profiles(task: Task) -> dict[str, Profile]:
    """The task's profiles by name (tasks without any have none)."""
    return {p.name: p for p in getattr(task, "profiles", ())}


def with_profile(task: Task, profile: str) -> Task:
    """`task` as `profile` changes it: GPUs, seeds, phase budgets, extra phase environment.

    Raises:
        UnknownTaskError: the task has no such profile, or cannot take profiles.
    """
    known = task_profiles(task)
    if profile not in known or not dataclasses.is_dataclass(task):
        raise UnknownTaskError(f"task {task.name!r} has no profile {profile!r}; its profiles: "
                               f"{', '.join(known) or 'none'}")
    p = known[profile]
    phases = tuple(ph.model_copy(update={"env": {**ph.env, **p.env}}) for ph in task.run_plan.phases)
    run_plan = task.run_plan.model_copy(update={"phases": phases,
                                                "seeds": p.seeds or task.run_plan.seeds})
    limits = task.limits.model_copy(update={"phase_budgets_s": {**task.limits.phase_budgets_s,
                                                                **p.phase_budgets_s}})
    resources = task.resources.model_copy(update={"gpus": task.resources.gpus if p.gpus is None else p.gpus})
    return dataclasses.replace(task, run_plan=run_plan, limits=limits, resources=resources, profile=profile)


def calibration_env(task: Task, runs: list[dict[str, Any]]) -> dict[str, str]:
    """The settings `task` derives from its calibration runs' metrics (its optional
    `calibration_env(runs)`, e.g. a compute budget measured on this machine); {} for a task without one.

    Raises:
        ValueError: the task could derive nothing from these runs.
    """
    derive = getattr(task, "calibration_env", None)
    return {str(k): str(v) for k, v in derive(runs).items()} if callable(derive) else {}


def with_env(task: Task, env: Mapping[str, str]) -> Task:
    """`task` under the settings a search recorded from its calibration (its optional `with_env(env)`).

    Raises:
        TaskSettingsError: there are settings and the task cannot take them (it has no `with_env`).
    """
    if not env:
        return task
    apply = getattr(task, "with_env", None)
    if not callable(apply):
        raise TaskSettingsError(f"task {task.name!r} cannot take the settings its search recorded from calibration "
                                f"({', '.join(sorted(env))}): it has no with_env")
    return apply(dict(env))


def _get_task(name: str) -> Task:
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


def preparation(task: Task) -> Plan | None:
    """The task's preparation plan, or None for a task that ships with the project."""
    plan_of = getattr(task, "preparation", None)
    return plan_of() if callable(plan_of) else None


def preparation_status(task: Task) -> PrepareStatus | None:
    """Whether the task is prepared on this machine (None: it ships with the project)."""
    plan = preparation(task)
    return None if plan is None else status(task.name, plan)


def prepared_root(task: Task) -> str:
    """Where the task is prepared on this machine ('' for a task that ships with the project);
    a search records it, so later commands use the same root (`pin_task_root`)."""
    return "" if preparation(task) is None else str(task_root(task.name))


def check_prepared(task: Task) -> None:
    """Nothing for a task that ships with the project or is prepared here.

    Raises:
        NotPreparedError: it must be prepared first (the message gives the command and the disk).
    """
    plan = preparation(task)
    if plan is not None:
        require_prepared(task.name, plan)


def pin_task_root(task: Task, recorded: str) -> None:
    """Make this process use the root a search recorded for `task` ('' leaves it alone)."""
    if recorded:
        use_task_root(task.name, Path(recorded))


def _preparation_info(task: Task) -> dict[str, Any] | None:
    plan = preparation(task)
    if plan is None:
        return None
    st = status(task.name, plan)
    return {"prepared": st.prepared, "root": str(st.root), "missing": list(st.missing), "command": st.command,
            "needed_bytes": st.needed_bytes, "free_bytes": st.free_bytes, "download_bytes": plan.download_bytes,
            "built_bytes": plan.built_bytes, "notes": plan.notes}


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
        "profiles": [p.model_dump() for p in task_profiles(task).values()],
        "profile": getattr(task, "profile", ""),
        "recipe_dir": str(task.recipe_dir()),
        "preparation": _preparation_info(task),
    }
