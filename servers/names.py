"""Tool names: each server's fixed tool names, and the names a client calls them by.

Inside the mounted suite a client calls `<server>_<tool>` (`submission_list_workspace`); a
server served alone keeps the bare names. Text a client reads names tools in one of two ways,
so that it always shows a name the client can call:

- descriptions (docstrings, parameter descriptions, instructions) write `{list_workspace}`;
  `render` fills the fields when a server registers its tools;
- messages and errors built at call time write `ref("list_workspace")`, which reads the names
  of the binding serving the current call (set by `naming`, a context variable that follows
  the call into worker threads). Outside any server it gives the bare name.

No other servers module is imported here, so plain code (workspaces, trials, jobs) can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

TOOLS: dict[str, tuple[str, ...]] = {
    "blackboard": ("get_lineage_view", "get_leaderboard", "get_trial", "list_trials", "get_tree", "get_knowledge"),
    "snapshot": ("list_snapshot_files", "read_snapshot", "diff_snapshots", "rebase_to"),
    "submission": ("list_workspace", "read_workspace_file", "edit_workspace_file", "write_workspace_file",
                   "workspace_diff", "syntax_check", "preflight", "submit_trial", "wait_trial"),
    "evaluator": ("evaluate", "get_job", "cancel_job", "list_jobs", "calibrate"),
}
FIELD = re.compile(r"\{([a-z_]+)\}")


def tool_names(mounted: bool) -> dict[str, str]:
    """Fixed tool name -> the name a client sees (`<server>_<tool>` inside the suite)."""
    return {t: f"{server}_{t}" if mounted else t for server, names in TOOLS.items() for t in names}


BARE = tool_names(False)
_current: ContextVar[Mapping[str, str]] = ContextVar("tool_names", default=BARE)


def ref(tool: str) -> str:
    """The name the current caller calls `tool` by (raises KeyError for a name that is no tool)."""
    if tool not in BARE:
        raise KeyError(f"{tool!r} is not a tool name")
    return _current.get()[tool]


@contextmanager
def naming(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block (and the worker threads it starts), `ref` answers from `names`."""
    token = _current.set(names)
    try:
        yield
    finally:
        _current.reset(token)


def render(text: str, names: Mapping[str, str]) -> str:
    """Fill `{tool}` fields with the callable names; other braces are left as they are."""
    return FIELD.sub(lambda m: names.get(m[1], m[0]), text)


def render_schema(schema: Any, names: Mapping[str, str]) -> None:
    """Fill `{tool}` fields in every description of a JSON schema, in place."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "description" and isinstance(value, str):
                schema[key] = render(value, names)
            else:
                render_schema(value, names)
    elif isinstance(schema, list):
        for item in schema:
            render_schema(item, names)
