"""Text views a specialist reads: lineage view, leaderboard, tree, knowledge, prompts.

Plain, synchronous code over `lineage.render` and `prompts` (no MCP); the blackboard server
wraps it. Lineage off: every view shows only the current best and says the rest is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from lineage.render import (
    render_best_only,
    render_knowledge,
    render_leaderboard,
    render_tree_tsv,
    render_view,
)
from prompts import render_brief, render_session_start
from servers.exceptions import RequestError
from servers.names import ref
from servers.app.runtime import SearchRuntime

LINEAGE_DIGEST = "KNOWLEDGE.md"
MAX_CHARS = 60_000


class TextPage(BaseModel):
    """A bounded slice of a longer text."""

    model_config = ConfigDict(frozen=True)

    name: str
    content: str
    offset: int
    total_chars: int
    next_offset: int | None = Field(None, description="pass as offset to read on; None at the end")


def lineage_view(rt: SearchRuntime, specialist: str, max_chars: int) -> str:
    return render_view(rt.store, rt.search_id, specialist, max_chars=max_chars)


def leaderboard(rt: SearchRuntime, limit: int = 20) -> str:
    if not rt.config.lineage:
        return render_best_only(rt.store, rt.search_id)
    return render_leaderboard(rt.store, rt.search_id, limit)


def tree(rt: SearchRuntime, specialist: str, root_exp: int | None, offset: int, limit: int) -> TextPage:
    """Lines of the research tree (tree.tsv, preorder), optionally only the subtree of `root_exp`."""
    if not rt.config.lineage:
        text = render_best_only(rt.store, rt.search_id, specialist)
        return TextPage(name="tree", content=text, offset=0, total_chars=len(text))
    lines = render_tree_tsv(rt.store, rt.search_id, rt.config.score_field)
    header = next(lines)
    if root_exp is not None:
        lines = (ln for ln in lines if _in_subtree(ln, root_exp))
    out, size, index, more = [header], len(header), 0, False
    for index, line in enumerate(lines):
        if index < offset:
            continue
        if len(out) > limit or size + len(line) + 1 > MAX_CHARS:
            more = True
            break
        out.append(line)
        size += len(line) + 1
    content = "\n".join(out) + "\n"
    return TextPage(name="tree.tsv", content=content, offset=offset, total_chars=len(content),
                    next_offset=index if more else None)


def _in_subtree(line: str, root_exp: int) -> bool:
    path = line.split("\t")[3]
    return any(int(part) == root_exp for part in path.split("/") if part.isdigit())


def knowledge(rt: SearchRuntime, name: str | None, offset: int, limit: int) -> TextPage:
    """The search's lineage digest (KNOWLEDGE.md) or one of the task's knowledge files."""
    files = rt.task.knowledge()
    name = name or LINEAGE_DIGEST
    if name == LINEAGE_DIGEST:
        text = _digest(rt) + f"\n\nTask knowledge files ({ref('get_knowledge')} with name=...): " + ", ".join(files)
    elif name in files:
        text = files[name]
    else:
        raise RequestError(f"no knowledge file {name!r}; available: {', '.join([LINEAGE_DIGEST, *files])}")
    if offset < 0 or not 1 <= limit <= MAX_CHARS:
        raise RequestError(f"offset >= 0 and limit 1..{MAX_CHARS} characters")
    part = text[offset:offset + limit]
    end = offset + len(part)
    return TextPage(name=name, content=part, offset=offset, total_chars=len(text),
                    next_offset=end if end < len(text) else None)


def _digest(rt: SearchRuntime) -> str:
    if not rt.config.lineage:
        return render_best_only(rt.store, rt.search_id)
    return render_knowledge(rt.store, rt.search_id)


def digest_text(rt: SearchRuntime) -> str:
    """KNOWLEDGE.md as a resource (lineage off: the best only)."""
    return _digest(rt)


def brief(rt: SearchRuntime, specialist: str, tools: Mapping[str, str]) -> str:
    """The specialist's full system prompt."""
    search = rt.search()
    task = rt.task
    return render_brief(
        task=task, role=rt.role(specialist), arm=rt.config.arm, lineage=rt.config.lineage,
        limits=task.limits, metric=task.metric, knowledge=task.knowledge(), tools=tools,
        specialist=specialist, roster=rt.roster, margin=rt.config.margin.effective(search.baseline_spread),
        calibrated=rt.config.calibrated_env,
    )


def session_start(rt: SearchRuntime, specialist: str, tools: Mapping[str, str], max_chars: int = 12_000) -> str:
    """The first user message of a session: the view and the workspace's state."""
    ws = rt.workspace(specialist)
    try:
        origin = ws.origin()
    except FileNotFoundError:
        origin = None
    modified = [f.path for f in ws.list_files() if f.modified]
    return render_session_start(view=lineage_view(rt, specialist, max_chars), specialist=specialist,
                                lineage=rt.config.lineage, tools=tools, origin=origin, modified=modified)
