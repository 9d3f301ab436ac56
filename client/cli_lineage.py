"""`autoresearch import | export | report`: release artifacts in and out (MLflow runs out), a search's figures.

Errors a user can fix (a missing directory, not a release layout, a state directory that
already holds a search) exit with status 2 and one line saying what to do, never a traceback.
An import that would lose rows exits with status 2 too, writes nothing, and lists each of those
rows (where, why) under that line; `--allow-loss` imports the rest and lists them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lineage.exceptions import ImportLossError, LineageError
from lineage.state import StateDir

StateOpt = Annotated[Path, typer.Option("--state", help="the search's state directory", resolve_path=True)]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _exp(exp_id: int | None) -> str:
    return "—" if exp_id is None else f"{exp_id:03d}"


def _open(state: Path) -> StateDir:
    if not state.is_dir():
        raise _fail(f"{state} does not exist; pass the --state directory of an existing search")
    try:
        return StateDir.open(state)
    except LineageError as exc:
        raise _fail(str(exc)) from None


def import_cmd(
    src: Annotated[Path, typer.Argument(help="release-artifact directory (results.tsv, tree.tsv, best.json…)", resolve_path=True)],
    state: StateOpt,
    lower_is_better: Annotated[bool | None, typer.Option(
        "--lower-is-better/--higher-is-better", help="the metric's direction (default: inferred)")] = None,
    score_field: Annotated[str | None, typer.Option(help="the score column (default: inferred)")] = None,
    task: Annotated[str | None, typer.Option(help="task name (default: the directory's name)")] = None,
    search_id: Annotated[str | None, typer.Option(help="search id (default: the state directory's name)")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL instead of <state>/lineage.db")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the import report as one JSON object")] = False,
    allow_loss: Annotated[bool, typer.Option(
        "--allow-loss", help="import even if some rows cannot be, and list every lost row")] = False,
) -> None:
    """Import a published run's release artifacts into a new search."""
    from lineage.release import import_release

    if not src.is_dir():
        raise _fail(f"{src} is not a directory; point at a release's blackboard/ directory")
    try:
        report = import_release(src, state, lower_is_better=lower_is_better, search_id=search_id,
                                database_url=database_url, task=task, score_field=score_field,
                                allow_loss=allow_loss)
    except ImportLossError as exc:
        exit_ = _fail(str(exc))
        for p in exc.lost:
            typer.echo(f"  lost {p.row} ({p.field}): {p.why}", err=True)
        raise exit_ from None
    except (LineageError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), default=str))
        return
    _print_import(report)


def _print_import(report) -> None:  # type: ignore[no-untyped-def]
    out = Console(highlight=False, soft_wrap=True)
    direction = "lower" if report.lower_is_better else "higher"
    out.print(f"Imported {report.rows_imported} rows from {report.source} into {report.state} "
              f"(search {report.search_id}, task {report.task}).")
    out.print(f"Score: {report.score_field} ({report.score_field_rule}); {direction} is better "
              f"({report.direction_rule}). Best: exp {_exp(report.best_exp_id)} = {report.best_score}. "
              f"Snapshots: {report.snapshots_imported}.")
    for row, how in report.recovered:
        out.print(f"  recovered {row}: {how}", markup=False)
    if report.lost:
        out.print(f"Lost {len(report.lost)} row(s) (--allow-loss):")
    for p in report.lost:
        out.print(f"  lost {p.row} ({p.field}): {p.why}", markup=False)
    if report.problems:
        out.print(f"{len(report.problems)} problem(s):")
    for p in report.problems[:50]:
        out.print(f"  {p.row} {p.field}: {p.why}", markup=False)
    if len(report.problems) > 50:
        out.print(f"  … {len(report.problems) - 50} more (use --json for all)")


def export_cmd(
    state: StateOpt,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (absent or empty)", resolve_path=True)] = None,
    mlflow: Annotated[str | None, typer.Option(
        "--mlflow", help="also (or only) export trials as MLflow runs to this tracking URI (needs the mlflow "
                         "extra; a file: store needs MLFLOW_ALLOW_FILE_STORE=true)")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: autoresearch/<search id>)")] = None,
) -> None:
    """Export a search to the release layout (results.tsv, tree.tsv, best.json, snapshots/…),
    and/or to MLflow (a run per finished trial: metrics, tunables as params, status and specialist as tags)."""
    from lineage.release import export_search

    if out is None and mlflow is None:
        raise _fail("say where to: --out DIR (the release layout), --mlflow URI, or both")
    sd = _open(state)
    try:
        if out is not None:
            report = export_search(sd, out)
            typer.echo(f"Exported {report.rows} rows and {report.snapshots} snapshots to {report.out}: "
                       + ", ".join(report.files))
            for line in report.problems:
                typer.echo(f"  {line}")
        if mlflow is not None:
            _export_mlflow(sd, mlflow, experiment)
    except (LineageError, OSError) as exc:
        raise _fail(str(exc)) from None
    finally:
        sd.close()


def _export_mlflow(sd: StateDir, uri: str, experiment: str | None) -> None:
    from lineage.mlflow_export import MlflowExportError, export_mlflow

    try:
        r = export_mlflow(sd, uri, experiment=experiment, params=_tunables(sd))
    except MlflowExportError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Exported {r.exported} trials as MLflow runs to {r.uri} (experiment {r.experiment!r}, id "
               f"{r.experiment_id}); {r.skipped_existing} already there, {r.skipped_unfinished} unfinished left out; "
               f"params: {', '.join(sorted(r.params)) or 'none (no tunables in the snapshots)'}")


def _tunables(sd: StateDir):  # type: ignore[no-untyped-def]
    """trial -> {name: value} of the tunables in its snapshot's .py files (parsed once per file)."""
    from tasks.base import parse_tunables

    parsed: dict[str, dict[str, str]] = {}

    def params(t) -> dict[str, str]:  # type: ignore[no-untyped-def]
        out: dict[str, str] = {}
        for e in sd.snapshots.list_files(t.snapshot) if t.snapshot else []:
            if e.path.endswith(".py") and e.size <= 1_000_000:
                if e.blob not in parsed:
                    text = sd.snapshots.read_file(t.snapshot, e.path).decode("utf-8", "replace")
                    parsed[e.blob] = {x.name: str(x.value) for x in parse_tunables(text)}
                out.update(parsed[e.blob])
        return out

    return params


def report_cmd(
    state: StateOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the best-so-far score here", resolve_path=True)] = None,
) -> None:
    """Summarise a search: trials, statuses, keeps, best, metric and noise margin."""
    from lineage._render_report import plot_best_so_far, search_report

    sd = _open(state)
    try:
        data = search_report(sd.store, sd.search_id)
        if plot is not None:
            plot_best_so_far(sd.store, sd.search_id, plot)
    except (LineageError, OSError) as exc:
        raise _fail(str(exc)) from None
    finally:
        sd.close()
    if as_json:
        typer.echo(json.dumps(data))
        return
    _print_report(data, plot)


def _print_report(data: dict, plot: Path | None) -> None:  # type: ignore[type-arg]
    out = Console(highlight=False, soft_wrap=True)
    direction = "lower" if data["lower_is_better"] else "higher"
    unit = f" {data['metric_unit']}" if data["metric_unit"] else ""
    profile = f", profile {data['profile']}" if data.get("profile") else ""
    out.print(f"[bold]{data['task']}[/bold] (search {data['search_id']}, arm {data['arm']}{profile})", markup=True)
    if data.get("calibrated_env"):
        out.print("Calibrated for this search (every trial runs under it): "
                  + ", ".join(f"{k}={v}" for k, v in data["calibrated_env"].items()), markup=False)
    out.print(f"Metric {data['score_field']}{unit}, {direction} is better; noise margin {data['margin']:.6g}, "
              f"baseline spread {data['spread'] if data['spread'] is not None else '—'}", markup=False)
    best = data["best"]
    if best:
        out.print(f"Best: exp {best['exp_id']:03d} by {best['specialist']}: {data['score_field']}="
                  f"{best['score']:.6g}", markup=False)
        if best.get("decision"):
            out.print(f"  {best['decision']}", markup=False)
    if data["baseline"]:
        out.print(f"Baseline: {data['baseline']['score']:.6g}", markup=False)
    out.print(_improvement_line(data["improvement"]), markup=False)
    c = data.get("confirmation") or {}
    if c.get("runs_per_candidate"):
        out.print(f"Confirmation: {c['runs_per_candidate']} paired re-runs per candidate at level {c['level']:g}: "
                  f"{c['confirmed']} confirmed, {c['not_confirmed']} not, {c['waiting']} waiting; "
                  f"{c['seconds']:.0f} s of re-runs", markup=False)
    table = Table(title=f"{data['trials']} trials, {data['keeps']} keeps")
    table.add_column("status")
    table.add_column("count", justify="right")
    for status, n in data["status_counts"].items():
        table.add_row(status, str(n))
    out.print(table)
    if plot is not None:
        out.print(f"Plot written to {plot}", markup=False)


def _improvement_line(imp: dict) -> str:  # type: ignore[type-arg]
    if imp["improvement"] is None:
        return f"Improvement over the baseline: — ({imp['why']})"
    text = f"Improvement over the baseline: {imp['improvement']:+.6g}"
    if imp["improvement_pct"] is not None:
        text += f" ({imp['improvement_pct']:+.3g}%)"
    if imp["lo"] is None:
        return text + f"; no interval: {imp['why']}"
    pct = f" ({imp['lo_pct']:+.3g}% to {imp['hi_pct']:+.3g}%)" if imp["lo_pct"] is not None else ""
    return (text + f", {imp['level']:.0%} interval {imp['lo']:+.6g} to {imp['hi']:+.6g}{pct} "
            f"[{imp['method']}; {imp['n_baseline']} calibration runs, {imp['n_best']} seed(s) of the best]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
    app.command("report")(report_cmd)
