"""`autoresearch run`, `status` and `stop`: the product's main job and its live view."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from client.cli_serve import BackendOptionOpt, backend_options
from client.display import RunLog, render, snapshot
from client.supervisor import NO_PROGRESS
from evaluator_service.exceptions import EvaluatorError
from lineage.exceptions import LineageError
from lineage.state import StateLayout
from tasks.exceptions import TaskError

ProjectError = (EvaluatorError, LineageError, TaskError)  # errors a user can act on: said, not traced

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | None) -> float | None:
    """'90s', '30m', '2h', '1h30m' or plain seconds -> seconds."""
    if text is None:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise typer.BadParameter(f"{text!r}: use a duration such as 90s, 30m, 2h or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def run(
    task: Annotated[str, typer.Option(help="task name (autoresearch tasks)")],
    state: Annotated[Path, typer.Option(help="search state directory (created if new, resumed if not)", resolve_path=True)],
    agent: Annotated[str, typer.Option(help="'scripted' or 'optuna[:tpe|random|cmaes|gp]' (no API key; "
                                            "with --roster roles each role changes only the constants it owns), "
                                            "'anthropic:MODEL' (the bundled client), or 'claude-code[:MODEL]' / "
                                            "'codex[:MODEL]': that agent CLI runs each session with the search's "
                                            "tools only (--web-search adds its web search and fetch); its key and "
                                            "base URL from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL or "
                                            "OPENAI_API_KEY / OPENAI_BASE_URL (an OpenAI-compatible server)")] = "scripted",
    trials: Annotated[int | None, typer.Option(help="trial budget of the search, across restarts")] = None,
    deadline: Annotated[str | None, typer.Option(help="stop this run after e.g. 2h")] = None,
    patience: Annotated[str | None, typer.Option(help="stop when no keep for e.g. 1h")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="stop when sessions have cost this much")] = None,
    concurrency: Annotated[int | None, typer.Option(help="concurrent sessions (default: roster size)")] = None,
    roster: Annotated[str, typer.Option(help="roles | generic | single")] = "roles",
    no_lineage: Annotated[bool, typer.Option("--no-lineage", help="control arm: only the best is shown")] = False,
    slots: Annotated[int | None, typer.Option(min=1, help="CPU tasks: trials evaluated at once (default: one per "
                                                          "CPU core); GPU tasks use the GPUs present")] = None,
    profile: Annotated[str, typer.Option(help="one of the task's profiles, e.g. a 1-GPU proxy (new searches)")] = "",
    specialists: Annotated[str | None, typer.Option(help="run only these roster members, comma-separated")] = None,
    baseline_score: Annotated[float | None, typer.Option(help="skip calibration, use this baseline")] = None,
    calibration_seeds: Annotated[int | None, typer.Option(help="calibration runs (default: the task's)")] = None,
    margin_sigmas: Annotated[float | None, typer.Option(help="keep margin in baseline spreads (default 1 with "
                                                               "confirmation, 2 without)")] = None,
    confirm: Annotated[int | None, typer.Option(min=0, help="new searches: re-run a candidate keep K times against "
                                                        "the best before keeping it (default: the task's; 0: off)")] = None,
    confirm_level: Annotated[float, typer.Option(min=0.001, max=0.5, help="one-sided level of that test")] = 0.05,
    margin_abs: Annotated[float, typer.Option(help="keep margin in metric units")] = 0.0,
    model: Annotated[list[str] | None, typer.Option(help="per-specialist model, SPEC=MODEL (repeatable)")] = None,
    price: Annotated[list[str] | None, typer.Option(help="USD per million tokens of a model the price table lacks, "
                                                         "MODEL=IN,OUT (repeatable; --budget-usd needs it for "
                                                         "e.g. codex:MODEL)")] = None,
    web_search: Annotated[bool, typer.Option(help="give LLM specialists the API's web search tool")] = False,
    max_turns: Annotated[int, typer.Option(help="tool-calling turns per LLM session")] = 40,
    session_time: Annotated[str, typer.Option(help="wall limit of one LLM session")] = "30m",
    grace: Annotated[str, typer.Option(help="how long in-flight sessions may finish after a stop "
                                             "(accepted trials are evaluated regardless)")] = "2m",
    backoff: Annotated[str, typer.Option(help="wait after a session that submitted nothing; doubles per one in a row")] = "2s",
    backoff_max: Annotated[str, typer.Option(help="the longest such wait")] = "5m",
    pause_after: Annotated[int, typer.Option(min=1, help="pause a specialist after this many sessions in a row "
                                                         "without a submission")] = 5,
    seed: Annotated[int | None, typer.Option(help="seed of the scripted proposer")] = None,
    plot: Annotated[Path | None, typer.Option(help="write the best-so-far plot here at the end", resolve_path=True)] = None,
    backend: Annotated[str | None, typer.Option(help="new searches: where trials run, local (default), slurm, "
                                                     "workers (remote `autoresearch worker` hosts), or a dotted path "
                                                     "to a backend class; a resumed search keeps its own")] = None,
    backend_option: BackendOptionOpt = None,
    database_url: Annotated[str | None, typer.Option(help="new searches: a PostgreSQL URL for the lineage "
                                                          "instead of <state>/lineage.db")] = None,
) -> None:
    """Run a search (initialising it when the state is new) with a live progress display."""
    from client.agent import SessionConfig
    from client.run import AgentChoice, ConfigMismatchError, ensure_search
    from client.supervisor import RunLimits

    try:
        overrides = dict(m.split("=", 1) for m in (model or []))
        choice = AgentChoice.parse(agent, models=overrides, web_search=web_search, session=SessionConfig(
            max_tool_turns=max_turns, time_limit_s=parse_duration(session_time) or 1800))
        _prices(price or [], choice, budget_usd)
        limits = RunLimits(trials=trials, deadline_s=parse_duration(deadline), patience_s=parse_duration(patience),
                           budget_usd=budget_usd, concurrency=concurrency, grace_s=parse_duration(grace) or 0,
                           backoff_s=parse_duration(backoff) or 0, backoff_max_s=parse_duration(backoff_max) or 0,
                           pause_after=pause_after)
        err = Console(stderr=True)
        from servers.app.init import Baseline

        with err.status(f"preparing {task} (calibrating the baseline when the search is new)…"):
            ensure_search(state, task, roster=roster, lineage=not no_lineage, margin_abs=margin_abs,
                          margin_sigmas=margin_sigmas, calibration_seeds=calibration_seeds, profile=profile,
                          confirm_runs=confirm, confirm_level=confirm_level, backend=backend,
                          database_url=database_url, slots=slots,
                          backend_options=backend_options(backend_option) if backend_option else None,
                          baseline=Baseline(score=baseline_score) if baseline_score is not None else None)
    except (ValueError, ConfigMismatchError, *ProjectError) as e:
        _fail(f"{type(e).__name__}: {e}" if isinstance(e, ProjectError) else str(e))
    only = [x.strip() for x in specialists.split(",") if x.strip()] if specialists else None
    progress = _run_live(state, choice, limits, slots or os.cpu_count() or 1, seed, only)
    _finish(state, plot)
    if progress.stop_reason == NO_PROGRESS:
        raise typer.Exit(3)  # for scripts: the search stopped because no specialist could submit


PRICED_HERE = ("anthropic", "codex")
"""Agents whose session cost comes from `client.prices` (Claude Code reports its own; the
LLM-free proposers cost nothing)."""


def _prices(specs: list[str], choice, budget_usd: float | None) -> None:  # type: ignore[no-untyped-def]
    """Register each `--price MODEL=IN,OUT`; with a spend cap, refuse a model that has no price
    (its sessions would count as free, and the cap would never stop the search)."""
    from client.prices import is_priced, register_prices

    for spec in specs:
        name, _, pair = spec.partition("=")
        try:
            p_in, p_out = (float(x) for x in pair.split(","))
        except ValueError:
            raise ValueError(f"--price {spec!r}: use MODEL=IN,OUT, in USD per million tokens") from None
        register_prices({name: (p_in, p_out)})
    if budget_usd is None or choice.kind not in PRICED_HERE:
        return
    unpriced = sorted({m for m in (choice.model, *choice.models.values()) if not is_priced(m)})
    if unpriced:
        named = ", ".join(repr(m) for m in unpriced)
        raise ValueError(f"--budget-usd: no price for the model {named} of --agent {choice.kind}; name the model "
                         f"(--agent {choice.kind}:MODEL) and give its price: --price MODEL=IN,OUT (USD per "
                         "million tokens)")


def _run_live(state: Path, choice, limits, slots: int, seed: int | None, only: list[str] | None):  # type: ignore[no-untyped-def]
    from client.run import run_search

    _log_to_file(state)
    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        def tick(sup) -> None:  # type: ignore[no-untyped-def]
            live.update(render(snapshot(sup.store, sup.sid, sup.progress)))

        import uvloop

        try:
            progress = uvloop.run(run_search(state, choice, limits, slots=slots, seed=seed, on_tick=tick,
                                             specialists=only))
        except ValueError as e:
            _fail(str(e))
    console.print(f"stopped: {progress.stop_reason} (log: {StateLayout(state).run_log})")
    for name, why in progress.paused.items():
        console.print(f"{name} paused: {why}")
    return progress


def _log_to_file(state: Path) -> None:
    """Server and worker logs go to <state>/logs/run.log, so the live view stays readable."""
    import logging

    import fastmcp  # noqa: F401  (it configures its own stderr handler on import; undone below)

    log = StateLayout(state).run_log
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("fastmcp", "mcp", "uvicorn"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True


def _finish(state: Path, plot: Path | None) -> None:
    from client.cli_lineage import report_cmd

    try:
        report_cmd(state, plot=plot)
    except typer.Exit:  # the report said what failed; the run itself ended as it did
        pass


def status(
    state: Annotated[Path, typer.Option(help="search state directory", resolve_path=True)],
    once: Annotated[bool, typer.Option(help="print one snapshot and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object (implies --once)")] = False,
) -> None:
    """The live view of a search that runs elsewhere (reads only its lineage)."""
    from lineage.exceptions import LineageError
    from lineage.state import StateDir

    try:
        sd = StateDir.open(state)
        log = RunLog()
        snap = lambda: snapshot(sd.store, sd.search_id, log=log)  # noqa: E731
        snap()
    except LineageError as e:
        _fail(str(e))
    if as_json:
        data = snap()
        data["inflight"] = [{"exp_id": t.exp_id, "specialist": t.specialist, "status": t.status.value} for t in data["inflight"]]
        data["recent"] = [t.exp_id for t in data["recent"]]
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        return
    console = Console()
    if once:
        console.print(render(snap()))
        return
    with Live(render(snap()), console=console, refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(1.0)
                live.update(render(snap()))
        except KeyboardInterrupt:
            pass


def stop(
    state: Annotated[Path, typer.Option(help="search state directory", resolve_path=True)],
    reason: Annotated[str, typer.Option(help="why (recorded in the lineage's events)")] = "autoresearch stop",
) -> None:
    """Ask a running search to stop gracefully (in-flight trials finish and are recorded)."""
    from client.supervisor import request_stop
    from lineage.state import StateDir

    if not StateDir.exists(state):
        _fail(f"{state} holds no search")
    path = request_stop(state, reason)
    Console().print(f"stop requested ({path}); the running search starts no new sessions, gives in-flight ones "
                    "the grace period, and evaluates every trial it accepted before it exits")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(status)
    app.command()(stop)

