"""What the host gives an external agent CLI session (Claude Code, Codex).

    AgentCLISettings   how the sessions run: MCP transport, base URL, web search, scratch root
    private_dir()      a fresh 0700 directory per session: the agent's HOME, TMPDIR and working
                       directory (it holds nothing of the host's), removed afterwards
    agent_env()        the agent's whole environment, on an allow-list: PATH and the locale, the
                       provider's key and base URL, HOME and TMPDIR pointed into the private dir,
                       and the agent's own fixed, non-secret knobs. Nothing else passes.
    mcp_endpoint()     how the agent reaches the search as its specialist: a stdio command that
                       serves only that specialist, or (http) a loopback server for this session
                       alone that accepts only that specialist's token
    AgentProcess       the CLI in a session of its own, under `_watchdog.py` (so it dies with
                       this process, however that ends): stdout read as lines, killed whole
                       (process group, then the session and the tree swept, checked dead)

The agent gets the specialist servers only (blackboard, snapshot, submission), never the
evaluator's, and never another specialist's token: the harness reads `<state>/tokens.json`
and hands the agent exactly its own entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from client._proctree import kill_tree, start_ticks

BASE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
"""Passed from the supervisor's environment when set: where programs are (Codex's launcher needs
`node`), and how text is decoded. None of them is a credential."""
SERVER_NAME = "autoresearch"
WATCHDOG = Path(__file__).with_name("_watchdog.py")
LINE_LIMIT = 64 << 20  # one JSON line of a CLI's stream (a tool result of a large lineage view)


class AgentCLISettings(BaseModel):
    """How sessions of an external agent CLI run (the limits come from `SessionConfig`)."""

    transport: Literal["stdio", "http"] = Field(
        "http", description="http: a loopback server per session in the supervisor's process, the "
                            "specialist's token in the agent's MCP config; stdio: the agent starts "
                            "`autoresearch serve --specialist NAME --no-workers` itself")
    base_url: str | None = Field(None, description="the provider API's base URL (default: the agent's, "
                                                   "or ANTHROPIC_BASE_URL / OPENAI_BASE_URL when set)")
    web_search: bool = Field(False, description="also allow the agent's web search and fetch tools")
    scratch_root: Path | None = Field(None, description="where private session dirs are made "
                                                        "(default: the system's temporary directory)")
    kill_timeout_s: float = Field(5.0, gt=0, description="how long killing an agent's tree may take")
    exit_wait_s: float = Field(3.0, ge=0, description="how long an agent may take to exit after its input closed")


@contextlib.contextmanager
def private_dir(root: Path | None, label: str) -> Any:
    """A fresh 0700 directory (with `tmp/` inside) for one session, removed on exit."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"ar-{label}-", dir=root))
    (path / "tmp").mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def agent_env(home: Path, source: Mapping[str, str], keys: Sequence[str], fixed: Mapping[str, str]) -> dict[str, str]:
    """The agent's environment: `BASE_ENV` and `keys` copied from `source` when set, plus `fixed`,
    with HOME and TMPDIR in `home`. Every other variable of `source` stays behind."""
    env = {k: source[k] for k in (*BASE_ENV, *keys) if source.get(k)}
    env.update(fixed)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"))
    return env


@dataclass(frozen=True)
class Endpoint:
    """Where this session's agent finds the search's specialist servers."""

    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    token: str = field(default="", repr=False)


@contextlib.asynccontextmanager
async def mcp_endpoint(rt: Any, specialist: str, transport: str) -> AsyncIterator[Endpoint]:
    """The specialist's endpoint for one session (an HTTP one is served only while it is open)."""
    from servers.clientconfig import server_command

    if transport == "stdio":
        command, args = server_command(rt.state.path, specialist)
        yield Endpoint("stdio", command, [*args, "--no-workers"], {"PYTHONUNBUFFERED": "1"})
        return
    from servers.auth import load_tokens

    token = load_tokens(rt.state.path)[specialist]
    async with loopback_suite(rt, specialist, token) as url:
        yield Endpoint("http", url=url, token=token)


@contextlib.asynccontextmanager
async def loopback_suite(rt: Any, specialist: str, token: str) -> AsyncIterator[str]:
    """Serve the specialist servers over HTTP on 127.0.0.1 for one session; yields the URL.

    The verifier knows this specialist's token only, so no other token opens it.
    """
    import uvicorn

    from servers.auth import SearchTokenVerifier
    from servers.serve import HTTP_PATH
    from servers.suite import build_suite

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # the supervisor owns SIGINT and SIGTERM
            yield

    app = build_suite(rt, auth=SearchTokenVerifier({specialist: token})).http_app(path=HTTP_PATH)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the session's MCP server stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{HTTP_PATH}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 5)
        if not task.done():
            task.cancel()
        sock.close()


class AgentProcess:
    """An agent CLI started in a session of its own with exactly `env`, in `cwd` (its private dir,
    which the watchdog removes if this process dies); killed whole by `kill()`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.argv, self.env, self.cwd, self.log = list(argv), dict(env), cwd, log
        self.proc: asyncio.subprocess.Process | None = None
        self.started: int | None = None  # the CLI's start time, with its pid its identity
        self._guard: int | None = None
        self.survivors: list[int] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        """Start the CLI under `_watchdog.py`, which kills the session if this process dies."""
        guard, self._guard = os.pipe()  # we hold the write end only; the watchdog sees EOF when we die
        watched = [sys.executable, "-I", "-S", str(WATCHDOG), str(guard), str(self.cwd), "--", *self.argv]
        try:
            with open(self.log, "ab") as err:  # the child keeps its own descriptor
                self.proc = await asyncio.create_subprocess_exec(
                    *watched, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                    env=self.env, cwd=self.cwd, start_new_session=True, pass_fds=(guard,), limit=LINE_LIMIT)
        finally:
            os.close(guard)
        self.started = start_ticks(self.proc.pid)

    async def write(self, data: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data.encode())
        await self.proc.stdin.drain()

    def close_input(self) -> None:
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    async def lines(self) -> AsyncIterator[str]:
        """stdout, line by line, until the CLI closes it."""
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            yield line.decode("utf-8", errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def finish(self, wait_s: float, kill_timeout_s: float, term: bool = False) -> list[int]:
        """Let the CLI exit on its own for `wait_s` (after a SIGTERM with `term`: time to write
        what it holds), then kill its tree; the survivors (none, normally)."""
        if self.proc is None:
            return []
        self.close_input()
        if term and self.running():
            self.proc.terminate()  # the watchdog passes it on
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.proc.wait(), wait_s)
        return self.kill(kill_timeout_s)

    def kill(self, timeout_s: float = 5.0) -> list[int]:
        """Kill the CLI, its process group and everything it started (synchronous: safe while cancelled)."""
        if self.proc is None:
            return []
        self.survivors = kill_tree(self.proc.pid, timeout_s, self.started)
        if self._guard is not None:
            os.close(self._guard)
            self._guard = None
        return self.survivors

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def provider_env(source: Mapping[str, str], base_var: str, base_url: str | None) -> dict[str, str]:
    """`source` with the base URL setting applied (an explicit one wins over the environment's)."""
    return {**source, base_var: base_url} if base_url else dict(source)
