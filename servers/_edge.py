"""What every server shares at the MCP edge: the binding, annotations, error mapping, names.

A tool body is two steps: `who = b.who()` (the caller, from the connection) and
`await b.run(fn, ...)` (the plain sync call, in a worker thread). Agent mistakes raised by the
plain code become `ToolError`s with their message; anything else is masked by the server
(`mask_error_details=True`) and logged with its traceback on stderr.

`register` fills the `{tool}` fields of descriptions with the binding's callable names and
sets them for every call the server handles (see `servers.names`), so errors and messages
built by plain code name tools the caller can call. Text parameters are `Text`: a client that
sends `30` for a text argument (a CLI guessing types) gets it through as "30".
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import Middleware
from fastmcp.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import Field

from lineage.exceptions import BudgetExhaustedError, SnapshotPathError, TrialFinishedError, TrialNotFoundError
from servers.auth import current_specialist
from servers.exceptions import ServerError
from servers.names import TOOLS, naming, render, render_schema, tool_names  # noqa: F401 - TOOLS re-exported
from servers.app.runtime import SearchRuntime

T = TypeVar("T")

# Every server masks internal error details (ToolError text still reaches the agent) and keeps
# output schemas' $defs as they are: dereferencing them again on every tools/list, which the
# sessionless protocol era runs per call, tripled a structured call's latency over HTTP.
SERVER_OPTIONS: dict[str, Any] = {"mask_error_details": True, "dereference_schemas": False}
READ = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
REPLACE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)
AGENT_ERRORS = (ServerError, TrialNotFoundError, SnapshotPathError, TrialFinishedError, BudgetExhaustedError)
HIDDEN_WITHOUT_LINEAGE = ("list_snapshot_files", "read_snapshot", "diff_snapshots")

# Text parameters accept numbers as their decimal text; integers are bounded so no value
# reaches SQLite (int64) or PostgreSQL (int32 columns) out of range.
Text = Annotated[str, Field(coerce_numbers_to_str=True)]
MAX_INT = 2**31 - 1


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking code in a worker thread; agent mistakes become `ToolError`s."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except AGENT_ERRORS as exc:
        raise ToolError(str(exc)) from None


@dataclass(frozen=True)
class Binding:
    """A server's view of the search: the runtime, and the fixed caller (stdio, in-process).

    `specialist=None` means the caller comes from the HTTP bearer token only.
    """

    rt: SearchRuntime
    specialist: str | None = None
    tools: dict[str, str] = field(default_factory=lambda: tool_names(False))

    def who(self) -> str:
        """The calling specialist (see `servers.auth.current_specialist`)."""
        return current_specialist(self.specialist, self.rt.roster)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_sync(fn, *args, **kwargs)


def runtime_lifespan(rt: SearchRuntime) -> Any:
    """A lifespan that holds the runtime open (and its workers running) while a server runs."""
    from fastmcp.server.lifespan import lifespan

    @lifespan
    async def hold(server: Any) -> Any:
        async with rt.running():
            yield {"runtime": rt}

    return hold


WAIT_CAP_S = 50.0  # below the ~60 s many clients allow one tool call
REFRESH_S = 10.0  # a waiter woken by changes only still re-reads this often (queue positions move)


async def wait_until(
    poll: Callable[[], T], done: Callable[[T], bool], timeout_s: float, ctx: Any,
    describe: Callable[[T], str], changed: Callable[[T, float], Awaitable[bool]] | None = None,
) -> T:
    """Wait until `done(poll())` or `timeout_s` (capped at WAIT_CAP_S), reporting progress ~1/s.

    With `changed(value, seconds)`, which returns True once the value may have changed (see
    `servers.app._watch.TrialWatch`), `poll` runs again only then, every REFRESH_S, and when the
    wait ends; without it, `poll` runs with a pause growing from 0.1 s to 1 s.
    """
    limit = min(max(float(timeout_s), 0.0), WAIT_CAP_S)
    start = read_at = time.monotonic()
    value, reported, pause = await run_sync(poll), -1.0, 0.1
    while not done(value) and (elapsed := time.monotonic() - start) < limit:
        if elapsed - reported >= 1.0:
            await ctx.report_progress(progress=round(elapsed, 2), total=limit, message=describe(value))
            reported = elapsed
        step = min(1.0, limit - elapsed)
        if changed is None:
            await anyio.sleep(min(pause, step))
            pause, stale = min(1.0, pause * 1.5), True
        else:
            stale = await changed(value, step)
            now = time.monotonic()
            stale = stale or now - read_at >= REFRESH_S or now - start >= limit
        if stale:
            value, read_at = await run_sync(poll), time.monotonic()
    return value


def tool(annotations: ToolAnnotations, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method of a tool set as an MCP tool (registered by `register`)."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__mcp__ = ("tool", {"annotations": annotations, **options})  # type: ignore[attr-defined]
        return fn
    return mark


def prompt(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method of a tool set as an MCP prompt."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__mcp__ = ("prompt", options)  # type: ignore[attr-defined]
        return fn
    return mark


def resource(uri: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method of a tool set as an MCP resource at `uri`."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__mcp__ = ("resource", {"uri": uri, **options})  # type: ignore[attr-defined]
        return fn
    return mark


class Naming(Middleware):
    """Every request this server handles sees `names` through `servers.names.ref`."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def on_message(self, context: Any, call_next: Any) -> Any:
        with naming(self.names):
            return await call_next(context)


def register(mcp: Any, tools: object, names: dict[str, str]) -> Any:
    """Register every marked method of `tools` (bound, so `self` is hidden) on `mcp`, with the
    `{tool}` fields of its descriptions filled from `names`."""
    mcp.add_middleware(Naming(names))
    for name in list(vars(type(tools))):
        kind, options = getattr(getattr(type(tools), name), "__mcp__", (None, {}))
        method = getattr(tools, name)
        doc = render(inspect.cleandoc(method.__doc__ or ""), names)
        if kind == "tool":
            built = Tool.from_function(method, name=name, description=doc, **options)
            render_schema(built.parameters, names)
            mcp.add_tool(built)
        elif kind == "prompt":
            mcp.prompt(method, name=name, description=doc, **options)
        elif kind == "resource":
            opts = dict(options)
            mcp.resource(opts.pop("uri"), name=opts.pop("name", name), description=doc, **opts)(method)
    return mcp
