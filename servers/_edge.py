"""What every server shares at the MCP edge: the binding, annotations, error mapping, names.

A tool body is two steps: `who = b.who()` (the caller, from the connection) and
`await b.run(fn, ...)` (the plain sync call, in a worker thread). Agent mistakes raised by the
plain code become `ToolError`s with their message; anything else is masked by the server
(`mask_error_details=True`) and logged with its traceback on stderr.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations

from lineage.exceptions import BudgetExhaustedError, SnapshotPathError, TrialFinishedError, TrialNotFoundError
from servers.auth import current_specialist
from servers.exceptions import ServerError
from servers.runtime import SearchRuntime

T = TypeVar("T")

# Every server masks internal error details (ToolError text still reaches the agent) and keeps
# output schemas' $defs as they are: dereferencing them again on every tools/list, which the
# sessionless protocol era runs per call, tripled a structured call's latency over HTTP.
SERVER_OPTIONS: dict[str, Any] = {"mask_error_details": True, "dereference_schemas": False}
READ = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
REPLACE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)
AGENT_ERRORS = (ServerError, TrialNotFoundError, SnapshotPathError, TrialFinishedError, BudgetExhaustedError)

TOOLS: dict[str, tuple[str, ...]] = {
    "blackboard": ("get_lineage_view", "get_leaderboard", "get_trial", "list_trials", "get_tree", "get_knowledge"),
    "snapshot": ("list_snapshot_files", "read_snapshot", "diff_snapshots", "rebase_to"),
    "submission": ("list_workspace", "read_workspace_file", "edit_workspace_file", "write_workspace_file",
                   "workspace_diff", "syntax_check", "preflight", "submit_trial", "wait_trial"),
    "evaluator": ("evaluate", "get_job", "cancel_job", "list_jobs", "calibrate"),
}
HIDDEN_WITHOUT_LINEAGE = ("list_snapshot_files", "read_snapshot", "diff_snapshots")


def tool_names(mounted: bool) -> dict[str, str]:
    """Fixed tool name -> the name a client sees (`<server>_<tool>` inside the suite)."""
    return {t: f"{server}_{t}" if mounted else t for server, names in TOOLS.items() for t in names}


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


async def wait_until(
    poll: Callable[[], T], done: Callable[[T], bool], timeout_s: float, ctx: Any,
    describe: Callable[[T], str], interval: float = 0.1,
) -> T:
    """Poll `poll()` until `done` or `timeout_s` (capped at WAIT_CAP_S), reporting progress ~1/s."""
    import time

    limit = min(max(float(timeout_s), 0.0), WAIT_CAP_S)
    start, reported = time.monotonic(), -1.0
    while True:
        value = await run_sync(poll)
        elapsed = time.monotonic() - start
        if done(value) or elapsed >= limit:
            return value
        if elapsed - reported >= 1.0:
            await ctx.report_progress(progress=round(elapsed, 2), total=limit, message=describe(value))
            reported = elapsed
        await anyio.sleep(min(interval, max(0.0, limit - elapsed)))


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


def register(mcp: Any, tools: object) -> Any:
    """Register every marked method of `tools` (bound, so `self` is hidden) on `mcp`."""
    for name in list(vars(type(tools))):
        kind, options = getattr(getattr(type(tools), name), "__mcp__", (None, {}))
        method = getattr(tools, name)
        if kind == "tool":
            mcp.tool(method, name=name, **options)
        elif kind == "prompt":
            mcp.prompt(method, name=name, **options)
        elif kind == "resource":
            opts = dict(options)
            mcp.resource(opts.pop("uri"), name=opts.pop("name", name), **opts)(method)
    return mcp
