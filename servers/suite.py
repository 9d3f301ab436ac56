"""Compose the servers of one search: one at a time, or all mounted as one suite.

    build_suite(rt, specialist=None)   blackboard_*, snapshot_*, submission_*, evaluator_* tools
    build_server("submission", rt)     one server, tool names without a namespace

`specialist` fixes the caller (stdio, in-process clients); leave it None over HTTP, where the
bearer token decides (pass `auth=SearchTokenVerifier(load_tokens(state))`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider

from servers._edge import SERVER_OPTIONS, Binding, tool_names
from servers.blackboard import build_blackboard
from servers.names import render
from servers.runtime import SearchRuntime
from servers.snapshot import build_snapshot
from servers.submission import build_submission

SERVERS = ("blackboard", "snapshot", "submission", "evaluator")
SPECIALIST_SERVERS = ("blackboard", "snapshot", "submission")
INSTRUCTIONS = (
    "An autoresearch search over MCP. Read the lineage ({get_lineage_view}), edit your private "
    "workspace (submission_*), check it ({preflight}), submit one trial with a one-sentence "
    "hypothesis and a signed expected delta ({submit_trial}), then {wait_trial}. "
    "The prompt blackboard_specialist_brief holds your full instructions."
)


def _build_evaluator(b: Binding) -> FastMCP:
    from servers.evaluator import build_search_evaluator

    return build_search_evaluator(b)


BUILDERS: dict[str, Callable[[Binding], FastMCP]] = {
    "blackboard": build_blackboard,
    "snapshot": build_snapshot,
    "submission": build_submission,
    "evaluator": _build_evaluator,
}


def build_suite(
    rt: SearchRuntime, specialist: str | None = None, *, servers: Sequence[str] = SERVERS,
    auth: AuthProvider | None = None, name: str = "autoresearch",
) -> FastMCP:
    """All (or the named) servers of a search mounted under their namespaces."""
    unknown = [s for s in servers if s not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    binding = Binding(rt, specialist, tool_names(mounted=True))
    suite = FastMCP(name, instructions=render(INSTRUCTIONS, binding.tools), auth=auth, **SERVER_OPTIONS)
    for server in servers:
        suite.mount(BUILDERS[server](binding), namespace=server)
    return suite


def build_server(
    kind: str, rt: SearchRuntime, specialist: str | None = None, *, auth: AuthProvider | None = None,
) -> FastMCP:
    """One server ("blackboard", "snapshot", "submission", "evaluator") or "all" (the suite)."""
    if kind == "all":
        return build_suite(rt, specialist, auth=auth)
    if kind not in BUILDERS:
        raise ValueError(f"unknown server {kind!r}; choose all or one of {', '.join(SERVERS)}")
    child = BUILDERS[kind](Binding(rt, specialist, tool_names(mounted=False)))
    outer = FastMCP(kind, instructions=child.instructions, auth=auth, **SERVER_OPTIONS)
    outer.mount(child)
    return outer
