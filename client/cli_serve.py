"""`autoresearch init | serve | serve-evaluator | mcp-config | tokens`: searches over MCP.

Errors a user can fix exit with status 2 and one line saying what to do, never a traceback.
stdout is left to the MCP protocol while a stdio server runs; everything else goes to stderr.
"""

from __future__ import annotations

import json
import secrets
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from servers.app.runtime import SearchRuntime

StateOpt = Annotated[Path, typer.Option("--state", help="the search's state directory", resolve_path=True)]
HostOpt = Annotated[str, typer.Option(help="HTTP: address to listen on (loopback by default)")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="HTTP: port")]
BackendOptionOpt = Annotated[list[str] | None, typer.Option(
    "--backend-option", help="a setting of the backend, KEY=VALUE (repeatable), e.g. partition=gpu")]


def backend_options(pairs: list[str] | None) -> dict[str, str]:
    """`--backend-option KEY=VALUE` pairs as a dict."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r}: write a backend option as KEY=VALUE, e.g. partition=gpu",
                                     param_hint="--backend-option")
        options[key.strip()] = value
    return options


class Roster(str, Enum):
    roles = "roles"
    generic = "generic"
    single = "single"


class ServerKind(str, Enum):
    suite = "suite"
    all = "all"
    blackboard = "blackboard"
    snapshot = "snapshot"
    submission = "submission"
    evaluator = "evaluator"


class Transport(str, Enum):
    stdio = "stdio"
    http = "http"


class ClientKind(str, Enum):
    claude_code = "claude-code"
    claude_desktop = "claude-desktop"
    codex = "codex"
    cursor = "cursor"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _runtime(state: Path, workers: int) -> SearchRuntime:
    from lineage.exceptions import LineageError
    from servers.app.runtime import SearchRuntime
    from tasks.exceptions import TaskError

    if not state.is_dir():
        raise _fail(f"{state} does not exist; create a search with `autoresearch init --task NAME --state {state}`")
    try:
        return SearchRuntime.open(state, workers=workers)
    except (LineageError, TaskError) as exc:
        raise _fail(str(exc)) from None


def init_cmd(
    task: Annotated[str, typer.Option(help="task name (see `autoresearch tasks`)")],
    state: StateOpt,
    roster: Annotated[Roster, typer.Option(help="roles: the task's specialists; generic: as many identical "
                                                "agents; single: one generalist")] = Roster.roles,
    no_lineage: Annotated[bool, typer.Option(
        "--no-lineage", help="control arm: specialists see only the best")] = False,
    agents: Annotated[int | None, typer.Option(min=1, max=256, help="generic roster: number of agents "
                                                                     "(default: the task's number of roles)")] = None,
    baseline_score: Annotated[float | None, typer.Option(help="skip calibration and use this baseline score")] = None,
    baseline_spread: Annotated[float | None, typer.Option(help="with --baseline-score: its run-to-run spread")] = None,
    calibration_seeds: Annotated[int | None, typer.Option(min=1, help="calibration runs (default: the task's)")] = None,
    margin_abs: Annotated[float, typer.Option(min=0.0, help="keep rule: absolute margin in metric units")] = 0.0,
    margin_sigmas: Annotated[float | None, typer.Option(min=0.0, help="keep rule: margin in baseline spreads "
                                                                       "(default 1 with confirmation, 2 without)")] = None,
    confirm: Annotated[int | None, typer.Option(min=0, help="re-run a candidate keep K times against the best, "
                                                        "interleaved, before keeping it (default: the task's; "
                                                        "0: keep at once)")] = None,
    confirm_level: Annotated[float, typer.Option(min=0.001, max=0.5, help="one-sided level of that test")] = 0.05,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL instead of <state>/lineage.db")] = None,
    search_id: Annotated[str | None, typer.Option(help="search id (default: the state directory's name)")] = None,
    profile: Annotated[str, typer.Option(help="one of the task's profiles, e.g. a 1-GPU proxy "
                                               "(`autoresearch tasks show NAME` lists them)")] = "",
    backend: Annotated[str, typer.Option(help="where trials run: local (this machine's GPUs or cores), "
                                              "slurm (a job per trial), workers (autoresearch worker processes on "
                                              "other hosts; a PostgreSQL lineage), or a dotted path to a backend class")] = "local",
    backend_option: BackendOptionOpt = None,
    slots: Annotated[int | None, typer.Option(min=1, help="CPU tasks: calibration runs evaluated at once; give "
                                                          "the --slots you will run with (default: one per core, "
                                                          "as run's)")] = None,
) -> None:
    """Create a search: calibrate the baseline, seed the workspaces, write the tokens.

    The keep rule's noise margin is max(--margin-abs, --margin-sigmas x calibrated spread). A
    trial beating the best by more becomes a candidate; with confirmation (--confirm K, the
    task's default) it is kept only if K paired re-runs against the best show an improvement
    above the margin at --confirm-level, and the margin defaults to one spread; without, it is
    kept at once and the margin defaults to two spreads.
    """
    from evaluator_service.exceptions import EvaluatorError
    from lineage.exceptions import LineageError
    from servers.app.init import Baseline, init_search
    from tasks.exceptions import TaskError

    base = None
    if baseline_score is not None:
        base = Baseline(score=baseline_score, spread=baseline_spread, n=1, note="baseline given with --baseline-score")
    try:
        result = init_search(task, state, roster=roster.value, lineage=not no_lineage, baseline=base,
                             calibration_seeds=calibration_seeds, margin_abs=margin_abs,
                             margin_sigmas=margin_sigmas, database_url=database_url, search_id=search_id,
                             confirm_runs=confirm, confirm_level=confirm_level,
                             agents=agents, profile=profile, backend=backend,
                             backend_options=backend_options(backend_option), slots=slots)
    except (LineageError, TaskError, EvaluatorError, ValueError, OSError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    b = result.baseline
    typer.echo(f"search {result.search_id} in {result.state_dir}: task {task}, roster {roster.value} "
               f"({', '.join(result.roster)}), lineage {'off' if no_lineage else 'on'}, backend {backend}")
    typer.echo(f"baseline {b.score:.6g} (spread {b.spread if b.spread is not None else '—'}, n={b.n}); "
               f"tokens in {result.tokens_file}")
    typer.echo(f"next: autoresearch serve --state {state} --transport http, or "
               f"autoresearch mcp-config --state {state} --specialist {result.roster[0]} --client claude-code")


SERVER_HELP = ("suite: blackboard, snapshot and submission mounted as one server (what `run` gives "
               "specialists); all: the suite plus the evaluator (opt-in: each caller's evaluator runs are "
               "capped and recorded as events); or one server alone")


def serve_cmd(
    state: StateOpt,
    server: Annotated[ServerKind, typer.Option(help=SERVER_HELP)] = ServerKind.suite,
    transport: Annotated[Transport, typer.Option(
        help="stdio (one specialist) or http (bearer tokens)")] = Transport.stdio,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    specialist: Annotated[str | None, typer.Option(help="stdio: the specialist this server acts for")] = None,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="do not run evaluator workers here")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="evaluator workers (concurrent trials)")] = 1,
    evaluator_runs: Annotated[int, typer.Option(
        min=0, max=10_000, help="with the evaluator served: runs each caller may queue in the whole search")] = 8,
) -> None:
    """Serve a search's MCP servers over stdio (for one specialist) or HTTP (every specialist).

    By default specialists get the blackboard, snapshot and submission servers, as under `run`;
    `--server all` or `--server evaluator` adds the evaluator. Evaluator workers run in at most
    one process per search at a time (a lock in <state>/evaluator/); other serve processes stand
    by and take over when it stops. Every process leases GPU/CPU slots host-wide, so an
    evaluator job never runs beside a trial on one slot.
    """
    from servers.auth import SearchTokenVerifier, load_tokens, wrong_token_text
    from servers.serve import serve
    from servers.suite import build_server

    if transport is Transport.http and specialist:
        raise _fail("over HTTP the bearer token decides who is calling; drop --specialist")
    if transport is Transport.stdio and not specialist and server is not ServerKind.evaluator:
        raise _fail("a stdio server acts for one specialist: add --specialist NAME (see `autoresearch tokens`)")
    rt = _runtime(state, 0 if no_workers else workers)
    rt.evaluator_runs = evaluator_runs
    if specialist and specialist not in rt.roster:
        raise _fail(f"{specialist!r} is not in this search's roster ({', '.join(rt.roster)})")
    auth = SearchTokenVerifier(load_tokens(state), wrong_token_text(state)) if transport is Transport.http else None
    mcp = build_server(server.value, rt, specialist, auth=auth)
    web, sources = _dashboard(state) if transport is Transport.http else (None, None)
    if transport is Transport.http:
        typer.echo(f"serving {server.value} of {rt.search_id} at http://{host}:{port}/mcp; its dashboard at "
                   f"http://{host}:{port}/ (`autoresearch tokens --state {state}` prints the address to open)", err=True)
    try:
        serve(mcp, transport.value, host, port, web=web)
    finally:
        if sources is not None:
            sources.close()
        rt.close()


def _dashboard(state: Path):  # type: ignore[no-untyped-def]
    """The search's web dashboard, served beside the MCP endpoint over HTTP."""
    from lineage.exceptions import LineageError
    from servers.dashboard import build_dashboard

    try:
        return build_dashboard([state])
    except (LineageError, OSError, ValueError) as exc:
        raise _fail(f"the dashboard cannot start: {exc}") from None


def serve_evaluator_cmd(
    task: Annotated[str, typer.Option(help="the task whose recipes this evaluator scores")],
    transport: Annotated[Transport, typer.Option(help="stdio or http")] = Transport.stdio,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    work_dir: Annotated[Path | None, typer.Option(
        help="evaluator work dir (default: ~/.cache/autoresearch/<task>)", resolve_path=True)] = None,
    token: Annotated[list[str] | None, typer.Option(
        envvar="AR_EVALUATOR_TOKEN", help="HTTP: a caller's bearer token as NAME=TOKEN (repeat for each "
                                          "caller; a bare TOKEN is caller 'client')")] = None,
    tokens_file: Annotated[Path | None, typer.Option(
        help="HTTP: a JSON file {name: token}, one token per caller", exists=True, dir_okay=False)] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="jobs run at the same time")] = 1,
) -> None:
    """Serve the evaluator alone, with no search, for reuse by other agent systems.

    Over HTTP each caller has a token of its own (--token NAME=TOKEN, --tokens-file) and sees
    and cancels only its own jobs; with neither, one token is generated and printed on stderr
    (a token you gave is never printed). Jobs live in this process's memory: they are gone
    when it stops.
    """
    from lineage.state import StateLayout
    from servers.app.backend import local_backend
    from servers.app.runtime import load_task
    from servers.app.jobs import EvaluationJobs
    from servers.evaluator import build_evaluator
    from servers.serve import serve
    from tasks.exceptions import TaskError

    try:
        the_task = load_task(task)
    except TaskError as exc:
        raise _fail(str(exc)) from None
    root = work_dir or Path.home() / ".cache" / "autoresearch" / the_task.name
    auth = _evaluator_auth(token or [], tokens_file, f"http://{host}:{port}/mcp", the_task.name) \
        if transport is Transport.http else None
    backend = local_backend(root, slots=workers)  # a cache dir laid out as a search's evaluator and data
    try:
        service = EvaluationJobs(StateLayout(root).submissions, default_task=the_task, backend=backend)
        serve(build_evaluator(service, auth=auth), transport.value, host, port)
    finally:
        backend.close()


def _evaluator_auth(given: list[str], tokens_file: Path | None, url: str, task: str):  # type: ignore[no-untyped-def]
    """The standalone evaluator's verifier: the callers' named tokens, or one generated and printed."""
    from servers.auth import SearchTokenVerifier, named_tokens, read_tokens_file

    try:
        from_file, from_flags = read_tokens_file(tokens_file) if tokens_file else {}, named_tokens(given)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    tokens = {**from_file, **from_flags}
    if len(tokens) != len(from_file) + len(from_flags) or len(set(tokens.values())) != len(tokens):
        raise _fail("each caller needs a name and a token of its own")
    if tokens:
        typer.echo(f"evaluator for {task} at {url}; callers: {', '.join(sorted(tokens))}", err=True)
    else:
        tokens = {"client": secrets.token_urlsafe(32)}
        typer.echo(f"evaluator for {task} at {url}; bearer token (caller 'client'): {tokens['client']}", err=True)
    wrong = ("the bearer token is wrong: use the token this evaluator printed when it started, or one given "
             "to it with --token NAME=TOKEN or --tokens-file")
    return SearchTokenVerifier(tokens, wrong)


def mcp_config_cmd(
    state: StateOpt,
    specialist: Annotated[str, typer.Option(help="the specialist this client acts as")],
    client: Annotated[ClientKind, typer.Option(help="which client's configuration format")],
    transport: Annotated[Transport, typer.Option(
        help="stdio (the client starts the server) or http")] = Transport.stdio,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    name: Annotated[str, typer.Option(help="the server's name inside the client")] = "autoresearch",
    server: Annotated[ServerKind, typer.Option(
        help="stdio: what the entry starts (see `serve --help`); the default gives no evaluator")] = ServerKind.suite,
) -> None:
    """Print a working MCP configuration for one specialist in the client's own format."""
    from servers.auth import load_tokens
    from servers.clientconfig import client_config
    from servers.serve import http_url

    rt = _runtime(state, 0)
    try:
        if specialist not in rt.roster:
            raise _fail(f"{specialist!r} is not in this search's roster ({', '.join(rt.roster)})")
        token = load_tokens(state).get(specialist) if transport is Transport.http else None
        text = client_config(client.value, state_dir=state, specialist=specialist, token=token,
                             transport=transport.value, url=http_url(host, port), name=name, server=server.value)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    finally:
        rt.close()
    typer.echo(text, nl=False)


def tokens_cmd(
    state: StateOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print {specialist: token} as JSON")] = False,
    viewer: Annotated[bool, typer.Option("--viewer", help="print only the read-only dashboard token")] = False,
) -> None:
    """List each specialist's bearer token (for HTTP clients), and the dashboard's viewer token.

    The viewer token opens the web dashboard (`autoresearch dashboard`, or `/` of an HTTP
    `serve`) read-only, and nothing else; it is made on first use.
    """
    from lineage.state import StateDir
    from servers.auth import load_tokens, viewer_token

    if not StateDir.exists(state):
        raise _fail(f"{state} holds no search; pass the --state directory of `autoresearch init` or `import`")
    try:
        tokens = load_tokens(state)
    except FileNotFoundError:
        tokens = {}  # an imported search has no specialists, only the viewer
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    try:
        view = viewer_token(state)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if viewer:
        typer.echo(view)
        return
    if as_json:
        typer.echo(json.dumps(tokens, indent=2))
        return
    width = max((len(n) for n in [*tokens, "viewer"]), default=0)
    for name, tok in tokens.items():
        typer.echo(f"{name:<{width}}  {tok}")
    typer.echo(f"{'viewer':<{width}}  {view}  (read-only dashboard: open http://HOST:PORT/?token={view})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("init")(init_cmd)
    app.command("serve")(serve_cmd)
    app.command("serve-evaluator")(serve_evaluator_cmd)
    app.command("mcp-config")(mcp_config_cmd)
    app.command("tokens")(tokens_cmd)
