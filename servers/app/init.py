"""Create a search: its lineage, baseline, workspaces and tokens (`autoresearch init`).

`init_search(...)` is a plain function, so the later `autoresearch run` can call it too.
Steps, in order (a failure before step 3 leaves no search behind):
  1. resolve the task and the roster of the arm (roles | generic | single);
  2. calibrate the baseline with the evaluator (or take the given score), and record the settings
     the task derives from the calibration runs (`tasks.registry.calibration_env`: a compute
     budget measured on this machine), which every evaluation of the search then runs under (`load_search_task`);
  3. create the state directory and the search (`lineage.state.StateDir.create`);
  4. store the starting recipe as the baseline row's snapshot (exp 0);
  5. seed every specialist's workspace from that snapshot (parent exp 0);
  6. write one bearer token per specialist to `<state>/tokens.json` (mode 0600).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator_service.calibrate import Calibration
from evaluator_service.exceptions import CalibrationError
from lineage.models import NoiseMargin, SearchConfig
from lineage.state import StateDir
from servers.app.backend import check_backend, search_backend
from servers.app.runtime import load_task
from servers.app.workspace import Workspace, WorkspaceLimits
from servers.auth import write_tokens
from tasks.base import Task
from tasks.registry import calibration_env, check_prepared, prepared_root, with_env

ROSTERS = ("roles", "generic", "single")
DEFAULT_SIGMAS = 2.0  # the noise margin in calibrated spreads, when a keep is decided by one trial
CONFIRMED_SIGMAS = 1.0  # ... and when candidates are confirmed by paired re-runs (the test carries the rest)


def roster_names(task: Task, roster: str, agents: int | None = None) -> tuple[str, ...]:
    """Specialist names of an arm: the task's roles, K identical `agentN`, or one generalist.

    K (`agents`) defaults to the size of the task's roster, as in the published control arm.
    """
    roles = tuple(r.name for r in task.roster())
    if roster == "roles":
        return roles
    if roster == "generic":
        k = agents or max(1, len(roles))
        if not 1 <= k <= 256:
            raise ValueError(f"agents is 1..256, not {k}")
        return tuple(f"agent{i}" for i in range(1, k + 1))
    if roster == "single":
        return ("generalist",)
    raise ValueError(f"roster {roster!r}: expected one of {', '.join(ROSTERS)}")


@dataclass(frozen=True)
class Baseline:
    """The starting recipe's score and its spread over `n` calibration runs."""

    score: float
    spread: float | None = None
    n: int = 1
    note: str = ""
    metrics: dict[str, Any] | None = None
    calibration: Calibration | None = None  # when measured


@dataclass(frozen=True)
class InitResult:
    state_dir: Path
    search_id: str
    roster: tuple[str, ...]
    baseline: Baseline
    tokens_file: Path


def calibrate_baseline(task: Task, state_dir: Path, seeds: int | None = None, *, backend: str = "local",
                       backend_options: dict[str, str] | None = None, slots: int | None = None) -> Baseline:
    """Run the unmodified recipe `seeds` times (None: the task's number) on the search's backend;
    score = mean, spread = std. `slots`: CPU tasks' runs at once (None: one per core)."""
    from evaluator_service.calibrate import calibrate_on

    where = SearchConfig(task=task.name, backend=backend, backend_options=backend_options or {})
    # locally as many at once as the search will run trials (`run --slots`, by default one per
    # core, on CPU; the GPUs present on GPU), so the spread is measured under the load trials meet
    runner = search_backend(where, Path(state_dir), slots or os.cpu_count() or 1, task)
    try:
        cal = calibrate_on(runner, task, seeds)
    finally:
        runner.close()
    return Baseline(score=cal.mean, spread=cal.spread, n=cal.n, calibration=cal)


def derived_env(task: Task, base: Baseline) -> dict[str, str]:
    """The settings `task` derives from the baseline's calibration runs ({} for a given baseline,
    or a task that derives none), checked to apply.

    Raises:
        CalibrationError: the task could derive nothing from the runs.
    """
    if base.calibration is None:
        return {}
    try:
        env = calibration_env(task, base.calibration.valid_metrics())
    except ValueError as e:
        raise CalibrationError(f"task {task.name!r} derived no settings from its calibration runs: {e}") from e
    with_env(task, env)
    return env


def _sigmas(given: float | None, confirm_runs: int) -> float:
    if given is not None:
        return given
    return CONFIRMED_SIGMAS if confirm_runs else DEFAULT_SIGMAS


def init_search(
    task_name: str, state_dir: str | Path, *, roster: str = "roles", lineage: bool = True,
    baseline: Baseline | None = None, calibration_seeds: int | None = None, margin_abs: float = 0.0,
    margin_sigmas: float | None = None, database_url: str | None = None, search_id: str | None = None,
    agents: int | None = None, profile: str = "", confirm_runs: int | None = None,
    confirm_level: float = 0.05, backend: str = "local", backend_options: dict[str, str] | None = None,
    slots: int | None = None,
) -> InitResult:
    """Create a search in `state_dir` (see the module docstring).

    Args:
        task_name: a registered task name (or a dotted "module:ATTR" path).
        roster: the arm's roster: "roles" (the task's specialists), "generic" (`agents`
            identical agents, default as many as the task has roles) or "single" (one generalist).
        lineage: False for the lineage-off control arm.
        baseline: a known baseline; None calibrates with the evaluator (`calibration_seeds`
            runs, default the task's own number) and records what the task derives from them
            (`SearchConfig.calibrated_env`; a known baseline records nothing: the task's defaults hold).
        margin_abs, margin_sigmas: the keep rule's noise margin, max(abs, sigmas x spread);
            sigmas defaults to 1 with confirmation (the paired test controls false keeps and
            requires the margin as its minimum effect) and to 2 without.
        database_url: a PostgreSQL URL; default SQLite in the state directory.
        profile: one of the task's profiles (a proxy for a smaller machine); "" = the full task.
        confirm_runs, confirm_level: confirmation of candidate keeps (K paired re-runs, the
            one-sided level); None takes the task's default K (`RunPlan.confirm_runs`).
        backend, backend_options: where the search's trials (and its calibration) run: an
            evaluator backend's name ("local", "slurm") or a dotted path, and its settings.
        slots: CPU tasks: calibration runs evaluated at once; give the `--slots` the search will
            run with (None: one per core, `run`'s default), since runs that share the cores
            measure slower and spread wider than runs alone.

    Raises:
        SearchExistsError: the directory already holds a search.
        UnknownTaskError: the task is unknown. CalibrationError: no calibration run scored, or the
            task derived nothing from them. BackendChoiceError: a backend or option it cannot use.
    """
    options = dict(backend_options or {})
    check_backend(backend, options, database_url=database_url or "")
    task = load_task(task_name, profile)
    names = roster_names(task, roster, agents)
    root = Path(state_dir)
    if StateDir.exists(root):
        from lineage.exceptions import SearchExistsError

        raise SearchExistsError(f"{root} already holds a search; choose a new --state directory")
    check_prepared(task)  # before any calibration: the error says the command that prepares it
    confirm = task.run_plan.confirm_runs if confirm_runs is None else confirm_runs
    base = baseline or calibrate_baseline(task, root, calibration_seeds, backend=backend,
                                          backend_options=options, slots=slots)
    env = derived_env(task, base)
    config = SearchConfig(
        task=task_name if ":" in task_name else task.name, profile=profile, score_field=task.metric.name,
        metric_unit=task.metric.unit,
        lower_is_better=task.metric.lower_is_better, roster=names, arm=roster, lineage=lineage,
        margin=NoiseMargin(abs_delta=margin_abs, sigmas=_sigmas(margin_sigmas, confirm)),
        task_root=prepared_root(task), confirm_runs=confirm,
        confirm_level=confirm_level, calibrated_env=env, backend=backend, backend_options=options,
    )
    state = StateDir.create(root, config, search_id=search_id, database_url=database_url)
    try:
        _populate(state, task, base, names)
        state.store.record_event(state.search_id, "init", payload={
            "task": task.name, "profile": profile, "roster": list(names), "arm": roster, "lineage": lineage,
            "confirm_runs": config.confirm_runs, "calibrated_env": env, "backend": backend,
            "baseline": base.score, "spread": base.spread, "n": base.n,
        })
        return InitResult(root, state.search_id, names, base, state.layout.tokens)
    finally:
        state.close()


def _populate(state: StateDir, task: Task, base: Baseline, names: tuple[str, ...]) -> None:
    """Baseline row with the recipe's snapshot, one workspace per specialist, the tokens."""
    digest = state.snapshots.put_tree(task.recipe_dir())
    if base.calibration is not None:
        from evaluator_service.calibrate import calibrate_into

        calibrate_into(state.store, state.search_id, base.calibration, snapshot=digest)
    else:
        state.store.set_baseline(state.search_id, base.score, base.spread, base.n, snapshot=digest,
                                 note=base.note, metrics=base.metrics)
    for name in names:
        Workspace(state.layout.workspace(name), tuple(task.editable), state.snapshots,
                  WorkspaceLimits()).rebase(digest, 0)
    write_tokens(state.path, names)
