"""`autoresearch tasks [list | show | recipe | prepare]`: the tasks, and preparing one here.

- `tasks` lists every task: its metric, GPUs per trial, and whether it is ready (`embedded`
  tasks ship with the project; the others say `prepared` or `not prepared`).
- `tasks show NAME` adds limits, run plan, roster, and for a task that must be prepared: where,
  whether it is, and if not the exact command and the disk it needs, plus its licence notes.
- `tasks recipe NAME --out DIR` writes the starting recipe there.
- `tasks prepare NAME [--root DIR] [--verify]` downloads the task's pinned sources, verifies
  them, builds its data and recipe, with progress bars. `--root` prepares elsewhere and is
  remembered for later commands. Exit status: 0 prepared, 1 failed (the message says what to
  do; a rerun resumes), 2 usage error.

Environment, read once here at the edge (`apply_environment`): `AR_TASK_ROOT`, the parent dir
of task roots (default `~/.cache/autoresearch/tasks`); `HF_ENDPOINT`, a Hugging Face mirror.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
)
from rich.table import Column, Table

from client.cli_eval import JsonOpt, _fail, _task, err, out

tasks_app = typer.Typer(help="List the tasks, show one, write its starting recipe, or prepare it on this machine.",
                        no_args_is_help=False)
_edge: dict[str, str | None] = {"hf_endpoint": None}


def apply_environment(env: Mapping[str, str]) -> None:
    """Read the settings this module's commands take from the environment (once per invocation)."""
    from tasks._prepare import set_tasks_home

    set_tasks_home(Path(env["AR_TASK_ROOT"]).expanduser() if env.get("AR_TASK_ROOT") else None)
    _edge["hf_endpoint"] = env.get("HF_ENDPOINT") or None


def _state(task: Any) -> str:
    from tasks.registry import preparation_status

    st = preparation_status(task)
    return "embedded" if st is None else "prepared" if st.prepared else "not prepared"


@tasks_app.callback(invoke_without_command=True)
def tasks_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the tasks: metric, GPUs per trial, and whether each is ready to run here."""
    if ctx.invoked_subcommand is not None:
        return
    from tasks.registry import list_tasks

    rows = [_task(name) for name in list_tasks()]
    if as_json:
        typer.echo(json.dumps([{"name": t.name, "metric": t.metric.name, "lower_is_better": t.metric.lower_is_better,
                                "gpus": t.resources.gpus, "state": _state(t), "description": t.description}
                               for t in rows]))
        return
    cells = [(t.name, f"{t.metric.name} ({t.metric.unit})" if t.metric.unit else t.metric.name,
              "lower" if t.metric.lower_is_better else "higher", str(t.resources.gpus), _state(t),
              t.description.split(". ")[0]) for t in rows]
    heads = ("task", "metric", "goal", "GPUs", "state", "about")
    widths = [max(len(c[i]) for c in [heads, *cells]) for i in range(5)]
    # one line per task: the facts at full width, the description cut to what they leave
    widths.append(max(out.width - sum(widths) - 3 * len(heads) - 1, len(heads[-1])))
    table = Table(*(Column(h, no_wrap=True, width=w, overflow="ellipsis") for h, w in zip(heads, widths)))
    for row in cells:
        table.add_row(*row)
    out.print(table)


@tasks_app.command("show")
def tasks_show_cmd(name: Annotated[str, typer.Argument(help="task name")], as_json: JsonOpt = False) -> None:
    """Show a task's metric, limits, run plan, resources, roster and preparation."""
    from tasks.registry import describe_task

    info = describe_task(_task(name))
    if as_json:
        typer.echo(json.dumps(info, default=str))
        return
    out.print(f"[bold]{info['name']}[/bold] — {info['description']}")
    m = info["metric"]
    out.print(f"metric: {m['name']} {m['unit']} ({'lower' if m['lower_is_better'] else 'higher'} is better); "
              f"editable: {', '.join(info['editable'])}; calibration runs: {info['calibration_seeds']}")
    lim = info["limits"]
    out.print("budgets: " + ", ".join(f"{k} {v:g} s" for k, v in lim["phase_budgets_s"].items())
              + (f"; artifact cap {lim['artifact_cap_bytes']:,} bytes" if lim.get("artifact_cap_bytes") else "")
              + "".join(f"; gate {k} {v}" for k, v in lim["gates"].items()))
    plan = info["run_plan"]
    out.print("run plan: " + " → ".join(f"{p['name']} ({p['kind']}{', per seed' if p['per_seed'] else ''})"
                                        for p in plan["phases"])
              + (" → interactive eval" if plan.get("interactive_eval") else " → scorer")
              + f"; {plan['seeds']} seed(s); {info['resources']['gpus']} GPU(s) per trial")
    _print_preparation(info["preparation"])
    table = Table("role", "title", "scope")
    for r in info["roster"]:
        table.add_row(r["name"], r["title"], r["scope"])
    out.print(table)


def _print_preparation(prep: dict[str, Any] | None) -> None:
    from tasks._manifest import human

    if prep is None:
        out.print("preparation: none needed (ships with the project)")
        return
    if prep["prepared"]:
        out.print(f"preparation: [green]prepared[/green] in {prep['root']}", highlight=False, soft_wrap=True)
    else:
        out.print(f"preparation: [yellow]not prepared[/yellow] in {prep['root']}; run\n  {prep['command']}\n"
                  f"  (downloads {human(prep['download_bytes'])}, builds {human(prep['built_bytes'])}; needs "
                  f"{human(prep['needed_bytes'])} free there, {human(prep['free_bytes'])} free now)",
                  highlight=False, soft_wrap=True)  # a command cut over two lines cannot be pasted
    if prep["notes"]:
        out.print(f"notes: {prep['notes']}", highlight=False)


@tasks_app.command("recipe")
def tasks_recipe_cmd(
    name: Annotated[str, typer.Argument(help="task name")],
    dest: Annotated[Path, typer.Option("--out", help="directory to write the recipe files into", resolve_path=True)],
    force: Annotated[bool, typer.Option("--force", help="overwrite files that already exist")] = False,
) -> None:
    """Write the task's starting recipe files into a directory."""
    from tasks.registry import preparation_status

    task = _task(name)
    st = preparation_status(task)
    if st is not None and not st.prepared:
        raise _fail(st.summary())
    src = task.recipe_dir()
    files = sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    clashes = [p.relative_to(src) for p in files if (dest / p.relative_to(src)).exists()]
    if clashes and not force:
        raise _fail(f"{dest} already has {', '.join(map(str, clashes))}; pass --force to overwrite")
    for p in files:
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
    typer.echo(f"wrote {len(files)} file(s) of {name} to {dest}")


@tasks_app.command("prepare")
def tasks_prepare_cmd(
    name: Annotated[str, typer.Argument(help="task name")],
    root: Annotated[Path | None, typer.Option(
        "--root", help="the task root: a new or empty directory to prepare the task in, remembered for "
                       "later commands (default $AR_TASK_ROOT/NAME, else ~/.cache/autoresearch/tasks/NAME)",
        resolve_path=True)] = None,
    verify: Annotated[bool, typer.Option("--verify", help="re-hash every file already there (slow for big tasks)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download, verify and build a task that does not ship with the project (idempotent, resumable)."""
    from tasks._prepare import prepare, remember_root
    from tasks.exceptions import TaskError
    from tasks.registry import preparation

    task = _task(name)
    plan = preparation(task)
    if plan is None:
        typer.echo(f"{task.name} ships with the project; there is nothing to prepare")
        return
    try:
        if root is not None:  # remembered first: `tasks show` and a rerun find an unfinished prepare there
            remember_root(task.name, root)
        with _RichProgress(quiet=as_json) as progress:
            manifest = prepare(task.name, plan, root, progress=progress, verify=verify,
                               hf_endpoint=_edge["hf_endpoint"])
    except TaskError as e:  # a refusal, a failed download or build, a wrong checksum
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1) from None
    _print_prepared(manifest, as_json)


def _print_prepared(manifest: Any, as_json: bool) -> None:
    from tasks._manifest import human

    summary = {"task": manifest.task, "root": str(manifest.root), "did": list(manifest.did),
               "files": len(manifest.files), "bytes": manifest.total_bytes()}
    if as_json:
        typer.echo(json.dumps(summary))
    elif not manifest.did:
        typer.echo(f"{manifest.task} is already prepared in {manifest.root} ({len(manifest.files)} files, "
                   f"{human(manifest.total_bytes())}); nothing to do (--verify re-hashes every file)")
    else:
        typer.echo(f"{manifest.task} prepared in {manifest.root}: {', '.join(manifest.did)} "
                   f"({len(manifest.files)} files, {human(manifest.total_bytes())})")


class _RichProgress:
    """`tasks._download.Progress` drawn as rich bars on stderr: the whole download, and each file."""

    def __init__(self, quiet: bool = False) -> None:
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(), console=err, disable=quiet,
                             transient=False)
        self.total: Any = None
        self.current: Any = None
        self.files = (0, 0)

    def __enter__(self) -> _RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def start(self, total_bytes: int, files: int) -> None:
        self.files = (0, files)
        for bar in (self.total, self.current):
            if bar is not None:
                self.bars.update(bar, visible=False)
        if files:
            self.total = self.bars.add_task(f"all (0/{files} files)", total=total_bytes or None)

    def file(self, dest: str, size: int | None, done: int = 0) -> None:
        if self.current is not None:
            self.bars.update(self.current, visible=False)
        self.files = (self.files[0] + 1, self.files[1])
        if self.total is not None:
            self.bars.update(self.total, description=f"all ({self.files[0]}/{self.files[1]} files)", advance=done)
        self.current = self.bars.add_task(dest, total=size, completed=done)

    def advance(self, nbytes: int) -> None:
        for bar in (self.total, self.current):
            if bar is not None:
                self.bars.advance(bar, nbytes)

    def message(self, text: str) -> None:
        if not self.bars.disable:
            self.bars.console.print(text, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(tasks_app, name="tasks")
