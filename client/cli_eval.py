"""`autoresearch tasks | evaluate | calibrate`: the evaluator from the command line.

- (`tasks ...` lives in `client/cli_tasks.py`.)
- `evaluate --task NAME [--seeds N] [--json] PATH` evaluates a recipe file or directory
  standalone (data and work dirs under `$AR_CACHE_DIR`, default `~/.cache/autoresearch`).
  Exit status: 0 for a valid trial, 1 for any other outcome, 2 for a usage error or a refusal
  (no sandbox available and no `--unisolated`).
- `calibrate --task NAME --seeds N --state DIR` runs the unmodified recipe N times and writes
  the mean and spread as the search's baseline row.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lineage.state import StateLayout

err = Console(stderr=True)
out = Console()

TaskOpt = Annotated[str, typer.Option("--task", help="task name (see `autoresearch tasks`)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
UnisolatedOpt = Annotated[bool, typer.Option(
    "--unisolated", help="run without the sandbox when bubblewrap is unavailable (every outcome says so)")]

def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def _task(name: str, profile: str = "") -> Any:
    from tasks.exceptions import TaskError
    from tasks.registry import get_task

    try:
        return get_task(name, profile)
    except TaskError as e:
        raise _fail(str(e)) from None


ProfileOpt = Annotated[str, typer.Option("--profile", help="one of the task's profiles (tasks show NAME)")]


def _check_prepared(task: Any) -> None:
    from tasks.exceptions import TaskError
    from tasks.registry import check_prepared

    try:
        check_prepared(task)
    except TaskError as e:
        raise _fail(str(e)) from None


def cache_dir(override: Path | None = None) -> Path:
    """The standalone cache root: --cache-dir, else $AR_CACHE_DIR, else ~/.cache/autoresearch."""
    return (override or Path(os.environ.get("AR_CACHE_DIR") or Path.home() / ".cache" / "autoresearch")).resolve()


# ---------------------------------------------------------------- evaluate


def _tree_for(task: Any, path: Path, scratch: Path) -> Path:
    """A directory holding the full editable tree: PATH itself, or the recipe with PATH swapped in."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise _fail(f"{path} is neither a file nor a directory")
    shutil.copytree(task.recipe_dir(), scratch, ignore=shutil.ignore_patterns("__pycache__"))
    target = path.name if (scratch / path.name).is_file() or path.name in task.editable else task.entrypoint
    shutil.copyfile(path, scratch / target)
    return scratch


def _backend_parts(task: Any, root: Path, unisolated: bool) -> tuple[Any, Any, Any]:
    from evaluator_service.evaluate import default_lease, prepare_data
    from evaluator_service.exceptions import IsolationUnavailableError
    from evaluator_service.sandbox import Sandbox, SandboxConfig
    from evaluator_service.slots import SlotPool

    layout = StateLayout(root)  # a cache dir holds the evaluator's work dir and data as a search's does
    sandbox = Sandbox(SandboxConfig(workdir=layout.evaluator, unisolated=unisolated))
    try:
        sandbox.probe()
    except IsolationUnavailableError as e:
        raise _fail(str(e)) from None
    lease = default_lease()
    if task.resources.gpus:
        pool = SlotPool.detect(os.environ.get("CUDA_VISIBLE_DEVICES"))
        if len(pool.devices) < task.resources.gpus:
            raise _fail(f"{task.name} needs {task.resources.gpus} GPU(s); this machine offers {len(pool.devices)}")
        lease = pool.acquire(task.resources.gpus)
    with err.status(f"preparing {task.name} data…"):
        data = prepare_data(task, layout.task_data(task.name))
    return sandbox, data, lease


def evaluate_cmd(
    path: Annotated[Path, typer.Argument(help="recipe file (swapped into the starting recipe) or directory", resolve_path=True)],
    task_name: TaskOpt,
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="seeds (default: the task's)")] = None,
    as_json: JsonOpt = False,
    unisolated: UnisolatedOpt = False,
    cache: Annotated[Path | None, typer.Option("--cache-dir", help="data and work dirs (default $AR_CACHE_DIR)", resolve_path=True)] = None,
    profile: ProfileOpt = "",
) -> None:
    """Evaluate a recipe standalone: sandboxed phases, harness scoring, a status."""
    from evaluator_service.evaluate import evaluate
    from evaluator_service.models import TrialSpec

    task = _task(task_name, profile)
    _check_prepared(task)
    root = cache_dir(cache)
    sandbox, data, lease = _backend_parts(task, root, unisolated)
    scratch = StateLayout(root).submissions / uuid.uuid4().hex
    try:
        tree = _tree_for(task, path.resolve(), scratch)
        spec = TrialSpec(task=task.name, profile=getattr(task, "profile", ""), tree=tree, seeds=seeds, label=f"cli {path.name}")
        if as_json:
            outcome = evaluate(task, spec, sandbox=sandbox, data_dirs=data, lease=lease)
        else:
            outcome = _with_progress(lambda p: evaluate(task, spec, sandbox=sandbox, data_dirs=data,
                                                        lease=lease, progress=p))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sandbox.close()
    if as_json:
        typer.echo(json.dumps(outcome.model_dump(mode="json")))
    else:
        _print_outcome(outcome, task)
    raise typer.Exit(0 if outcome.status == "valid" else 1)


def _with_progress(run: Any) -> Any:
    t0 = time.monotonic()
    with err.status("starting…") as status:
        def progress(message: str) -> None:
            status.update(f"{message}  [dim]({time.monotonic() - t0:.1f} s)[/dim]")
            err.print(f"[dim]{time.monotonic() - t0:6.1f} s[/dim]  {message}", highlight=False)

        return run(progress)


def _print_outcome(outcome: Any, task: Any) -> None:
    color = "green" if outcome.status == "valid" else "red"
    unit = f" {task.metric.unit}" if task.metric.unit else ""
    score = f"{outcome.score:.6g}{unit}" if outcome.score is not None else "—"
    out.print(f"[{color} bold]{outcome.status}[/]  {task.metric.name} = {score}", highlight=False)
    table = Table("measure", "value", show_header=False)
    for name, secs in outcome.timings.items():
        table.add_row(f"time: {name}", f"{secs:.2f} s")
    for name, value in outcome.metrics.items():
        table.add_row(name, f"{value:.6g}" if isinstance(value, float) else str(value)[:80])
    if outcome.artifact_bytes is not None:
        table.add_row("artifact", f"{outcome.artifact_bytes:,} bytes")
    out.print(table)
    if outcome.failure:
        out.print(f"failure: {outcome.failure}", highlight=False)
    if outcome.status != "valid" and outcome.log_tail:
        err.print(outcome.log_tail[-1500:], highlight=False, markup=False)
    if outcome.unisolated:
        err.print("[yellow]warning: ran UNISOLATED (no sandbox); the numbers are not trustworthy[/yellow]")


# ---------------------------------------------------------------- calibrate


def _open_search(state: Path, task: Any) -> Any:
    """The search in `state`, checked to run `task`."""
    from lineage.exceptions import LineageError
    from lineage.state import StateDir
    from tasks.registry import get_task

    if not state.is_dir():
        raise _fail(f"{state} does not exist; create the search first: autoresearch init --task {task.name} --state {state}")
    try:
        sd = StateDir.open(state)
    except LineageError as e:
        raise _fail(str(e)) from None
    held = sd.search.config.task
    if held != task.name and get_task(held).name != task.name:
        sd.close()
        raise _fail(f"the search in {state} runs task {held!r}, not {task.name!r}")
    return sd


def calibrate_cmd(
    task_name: TaskOpt,
    state: Annotated[Path, typer.Option("--state", help="the search's state directory", resolve_path=True)],
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="calibration runs (default: the task's)")] = None,
    slots: Annotated[int, typer.Option(min=1, help="CPU tasks: runs evaluated at once (give the --slots the search "
                                                   "runs with: runs sharing the cores measure slower)")] = 1,
    as_json: JsonOpt = False,
    unisolated: UnisolatedOpt = False,
) -> None:
    """Run the unmodified recipe N times; write mean and spread as the search's baseline.

    The runs use the search's recorded settings (a calibrated compute budget, say) and leave
    them as they are: trials already measured under them stay comparable.
    """
    from evaluator_service.calibrate import calibrate_into, calibrate_on, calibration_runs
    from evaluator_service.exceptions import EvaluatorError, IsolationUnavailableError
    from lineage.exceptions import LineageError
    from evaluator_service.local import LocalBackend
    from servers.app.backend import BackendChoiceError, search_backend
    from servers.app.runtime import load_search_task
    from tasks.exceptions import TaskError

    task = _task(task_name)
    sd = _open_search(state, task)
    try:  # calibrate what the search runs: its profile, under the settings its first calibration recorded
        task = load_search_task(sd.search.config)
    except TaskError as e:
        sd.close()
        raise _fail(str(e)) from None
    n = calibration_runs(task, seeds)
    backend = None
    try:  # on the search's backend, `slots` runs at a time locally
        backend = search_backend(sd.search.config, state.resolve(), slots, task, unisolated=unisolated)
        if isinstance(backend, LocalBackend):
            backend.sandbox.probe()  # says at once if this machine cannot isolate trials
        with err.status(f"calibrating {task.name}: {n} run(s)…") as status:
            def seen(i: int, o: Any) -> None:
                status.update(f"calibrating {task.name}: {i + 1}/{n} done")
                err.print(f"run {i + 1}/{n}: {o.status} {o.score if o.score is not None else ''} {o.failure}",
                          highlight=False, markup=False)

            cal = calibrate_on(backend, task, n, on_outcome=None if as_json else seen)
        trial = calibrate_into(sd.store, sd.search_id, cal)
    except IsolationUnavailableError as e:
        raise _fail(str(e)) from None
    except (EvaluatorError, LineageError, BackendChoiceError) as e:
        raise _fail(f"{type(e).__name__}: {e}") from None
    finally:
        if backend is not None:
            backend.close()
        sd.close()
    if as_json:
        typer.echo(json.dumps({**cal.model_dump(mode="json"), "baseline_exp": trial.exp_id}))
    else:
        spread = f"{cal.spread:.4g}" if cal.spread is not None else "—"
        out.print(f"baseline of {sd.search_id}: mean {cal.mean:.6g}, spread {spread}, "
                  f"{cal.n}/{cal.runs} runs valid ({cal.seeds_per_run} seed(s) each)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("evaluate")(evaluate_cmd)
    app.command("calibrate")(calibrate_cmd)
