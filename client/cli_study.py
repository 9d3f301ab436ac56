"""`autoresearch study`: the arms of the paper and the LLM-free controls, R times each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def study_cmd(
    task: Annotated[str, typer.Option(help="task name (the embedded CPU tasks make a study of minutes per search)")],
    out: Annotated[Path, typer.Option(help="where the searches go (<out>/<arm>/<repeat>)", resolve_path=True)] = Path("runs/study"),
    arms: Annotated[str, typer.Option(help="comma-separated: roles, generic, single, lineage-off, random, tpe")] =
        "roles,generic,single,lineage-off,random,tpe",
    repeats: Annotated[int, typer.Option(min=1, help="searches per arm")] = 3,
    trials: Annotated[int, typer.Option(min=1, help="trial budget of every search")] = 24,
    plot: Annotated[Path | None, typer.Option(help="write the best-so-far curves per arm here", resolve_path=True)] = None,
    control: Annotated[str, typer.Option(help="the arm every other arm is set against (difference of the means, "
                                              "with a bootstrap interval)")] = "random",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object at the end")] = False,
) -> None:
    """Run the study (finished searches are kept, so it resumes) and compare the arms."""
    from client.cli_dashboard import _print_compare
    from client.study import StudyConfig, run_study, study_figures
    from lineage._compare_plot import plot_compare

    try:
        cfg = StudyConfig(task=task, out=out, arms=tuple(a.strip() for a in arms.split(",") if a.strip()),
                          repeats=repeats, trials=trials)
    except ValueError as e:
        Console(stderr=True).print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    err = Console(stderr=True)
    with err.status("study") as status:
        run_study(cfg, on_search=lambda arm, r, what: status.update(f"{arm} {r + 1}/{repeats}: {what}"))
    result = study_figures(cfg, control)
    if plot is not None:
        plot_compare(result, plot)
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    _print_compare(result, plot)
    out_console = Console(highlight=False)
    for g in result["groups"]:
        out_console.print(f"  {g['name']}: confirmation re-runs took {g['confirmation_seconds']:.0f} evaluator "
                          "seconds per search (machine time, not trial budget)", markup=False)
    if result["versus"]:
        level = result["bootstrap"]["level"]
        out_console.print(f"Against {control} (difference of the means, {level:.0%} bootstrap interval; "
                          "positive improvement = better than the control):", markup=False)
    for v in result["versus"]:
        imp, best = v["figures"]["improvement_pct"], v["figures"]["best"]
        out_console.print(f"  {v['group']} - {control}: improvement {_diff(imp, '%')}, best {_diff(best, '')}",
                          markup=False)


def _diff(d: dict, unit: str) -> str:  # type: ignore[type-arg]
    """A difference with its interval: "+4.2% [+1.1%, +7.9%]" ("—" when there is none)."""
    if d["mean"] is None:
        return "—"
    bounds = "" if d["lo"] is None else f" [{d['lo']:+.3g}{unit}, {d['hi']:+.3g}{unit}]"
    return f"{d['mean']:+.3g}{unit}{bounds}"


def register(app: typer.Typer) -> None:
    app.command("study")(study_cmd)
