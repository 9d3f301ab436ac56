"""Compose the servers of one search: one at a time, or several mounted as one suite.

    build_suite(rt, specialist=None)   blackboard_*, snapshot_*, submission_* tools: what a
                                       specialist gets from `run`, `serve` and `mcp-config`
    build_suite(rt, servers=SERVERS)   ... and evaluator_* (an explicit opt-in: its jobs are
                                       capped per caller and recorded, see servers/app/_ledger.py)
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
from servers.app.runtime import SearchRuntime
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
    rt: SearchRuntime, specialist: str | None = None, *, servers: Sequence[str] = SPECIALIST_SERVERS,
    auth: AuthProvider | None = None, name: str = "autoresearch",
) -> FastMCP:
    """The named servers of a search (default: the specialist servers) mounted under their namespaces."""
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
    """One server ("blackboard", "snapshot", "submission", "evaluator"), "suite" (the specialist
    servers mounted) or "all" (the suite plus the evaluator)."""
    if kind in ("suite", "all"):
        return build_suite(rt, specialist, servers=SERVERS if kind == "all" else SPECIALIST_SERVERS, auth=auth)
    if kind not in BUILDERS:
        raise ValueError(f"unknown server {kind!r}; choose suite, all or one of {', '.join(SERVERS)}")
    child = BUILDERS[kind](Binding(rt, specialist, tool_names(mounted=False)))
    outer = FastMCP(kind, instructions=child.instructions, auth=auth, **SERVER_OPTIONS)
    outer.mount(child)
    return outer
