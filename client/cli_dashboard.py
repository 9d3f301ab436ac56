"""`autoresearch dashboard | compare`: a search's web page, and comparisons of searches.

Errors a user can fix (a missing directory, one that holds no search, a port in use) exit with
status 2 and one line saying what to do, never a traceback.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lineage.exceptions import LineageError
from lineage.state import StateDir


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _check_dirs(dirs: list[Path]) -> None:
    if not dirs:
        raise _fail("give at least one state directory of a search")
    for d in dirs:
        if not StateDir.exists(d):
            raise _fail(f"{d} holds no search (no search.json); pass the --state directory of `autoresearch "
                        "init`, `run` or `import`")


def _port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise _fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None


def dashboard_cmd(
    state: Annotated[list[Path], typer.Option(
        "--state", help="a search's state directory; repeat it to compare several", resolve_path=True)],
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port")] = 8080,
    poll_ms: Annotated[int, typer.Option(min=200, max=60_000, help="how often the page checks for news")] = 2000,
) -> None:
    """Serve a read-only web page of a search (live), or the comparison of several searches.

    It prints the address to open, with the search's viewer token; the page swaps the token for
    a cookie at once. Specialists' tokens (`autoresearch tokens`) open it too.
    """
    from servers.auth import viewer_token
    from servers.dashboard import build_dashboard
    from servers.serve import run_loop

    _check_dirs(state)
    _port_free(host, port)
    try:
        app, sources = build_dashboard(state, poll_ms=poll_ms)
        token = viewer_token(state[0])
    except (LineageError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    shown = f"[{host}]" if ":" in host else host
    what = "comparison of " + ", ".join(sources.keys()) if len(sources) > 1 else f"search {sources.keys()[0]}"
    typer.echo(f"dashboard of {what} at http://{shown}:{port}/?token={token}", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo("warning: plain HTTP beyond loopback carries the token and the cookie in clear; "
                   "put the dashboard behind HTTPS (a reverse proxy) for anything but a trusted network", err=True)
    try:
        run_loop(_serve(app, host, port))
    finally:
        sources.close()


async def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)
    await uvicorn.Server(config).serve()


def _fmt(x: Any, digits: int = 6) -> str:
    return "—" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _ci(f: dict[str, Any]) -> str:
    if f["mean"] is None:
        return "—"
    return _fmt(f["mean"], 4) + ("" if f["lo"] is None else f" [{_fmt(f['lo'], 4)}, {_fmt(f['hi'], 4)}]")


def _mix(mix: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in mix.items())


def _print_compare(result: dict[str, Any], plot: Path | None) -> None:
    """Lines, not a wide table: one block per search and per group, readable at any width."""
    out = Console(highlight=False, soft_wrap=True)
    out.print("[bold]Searches[/bold]")
    for s in result["searches"]:
        to_best = "" if s["best_exp"] is None else f" (exp {s['best_exp']:03d}, after {s['trials_to_best']} trials)"
        pct = "" if s["improvement_pct"] is None else f" ({s['improvement_pct']:+.3g}%)"
        gain = "—" if s["improvement"] is None else f"{s['improvement']:+.6g}"
        out.print(f"  {s['label']}  [{s['group']}]: {s['trials']} trials, {s['keeps']} keeps, best "
                  f"{_fmt(s['best'])}{to_best}, baseline {_fmt(s['baseline'])}, improvement {gain}{pct}", markup=False)
        out.print(f"      status mix: {_mix(s['status_mix']) or '—'}", markup=False)
    boot = result["bootstrap"]
    out.print(f"[bold]Groups[/bold]: mean [{boot['level']:.0%} bootstrap interval over the group's searches, "
              f"{boot['resamples']} resamples]")
    for g in result["groups"]:
        f = g["figures"]
        out.print(f"  {g['name']}  ({g['n']} search{'es' * (g['n'] != 1)}: {', '.join(g['members'])})", markup=False)
        out.print(f"      trials {_ci(f['trials'])} · keeps {_ci(f['keeps'])} · best {_ci(f['best'])} · improvement "
                  f"{_ci(f['improvement'])} ({_ci(f['improvement_pct'])}%) · trials to best {_ci(f['trials_to_best'])}",
                  markup=False)
        out.print(f"      status mix: {_mix(g['status_mix']) or '—'}", markup=False)
    if plot is not None:
        out.print(f"Plot written to {plot}", markup=False)


def compare_cmd(
    dirs: Annotated[list[Path], typer.Argument(help="state directories of the searches to compare", resolve_path=True)],
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the best-so-far curves here", resolve_path=True)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Compare searches: per search, and per group of repeated searches with bootstrap intervals.

    Searches with the same task, arm and lineage setting form a group. Curves are best-so-far
    per trial (in % over each baseline when the searches do not share one metric).
    """
    from lineage._compare_plot import plot_compare
    from lineage.compare import compare_dirs

    _check_dirs(dirs)
    try:
        result = compare_dirs(dirs)
        if plot is not None:
            plot_compare(result, plot)
    except (LineageError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_compare(result, plot)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("dashboard")(dashboard_cmd)
    app.command("compare")(compare_cmd)
