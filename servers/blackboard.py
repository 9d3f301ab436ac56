"""The blackboard server: read the lineage of the search (views, rows, tree, knowledge).

Tools: get_lineage_view, get_leaderboard, get_trial, list_trials, get_tree, get_knowledge.
Resources: lineage://leaderboard, lineage://knowledge. Prompts: specialist_brief (the full
system prompt for the caller), session_start (the first user message). With the lineage off
every view shows only the current best, and rows are limited to the best and your own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastmcp import FastMCP
from pydantic import Field

from lineage.models import TrialStatus
from servers.app import trials, views
from servers._edge import MAX_INT, READ, SERVER_OPTIONS, Binding, Text, prompt, register, resource, runtime_lifespan, tool
from servers.models import TrialInfo, TrialPage
from servers.names import render

Status = Literal[tuple(s.value for s in TrialStatus)]  # type: ignore[valid-type]

INSTRUCTIONS = (
    "The blackboard of an autoresearch search: read the lineage (every earlier trial with its hypothesis, "
    "score, delta and failure) before proposing a change. Start with {get_lineage_view}."
)


class BlackboardTools:
    """The blackboard's tools, resources and prompts for one binding."""

    def __init__(self, b: Binding) -> None:
        self.b = b

    @tool(READ, output_schema=None)
    async def get_lineage_view(
        self,
        max_chars: Annotated[int, Field(ge=2_000, le=60_000, description="size bound of the view")] = 12_000,
    ) -> str:
        """Read the lineage view: the bounded markdown summary to read before proposing.

        Sections: header (metric, counts, current best, baseline spread, noise margin),
        leaderboard, the best's ancestry, the best's children, recent activity, your recent
        trials, your neighbours' trials, saturation signal. With the lineage off it shows only
        the current best.

        Args:
            max_chars: upper bound on the returned text.

        Returns:
            Markdown text.
        """
        who = self.b.who()
        return await self.b.run(views.lineage_view, self.b.rt, who, max_chars)

    @tool(READ, output_schema=None)
    async def get_leaderboard(
        self,
        limit: Annotated[int, Field(ge=1, le=100, description="how many kept trials to list")] = 20,
    ) -> str:
        """Read the leaderboard: the current best and the top kept trials, best first.

        Args:
            limit: number of kept trials to list.

        Returns:
            Markdown text (lineage off: only the current best).
        """
        self.b.who()
        return await self.b.run(views.leaderboard, self.b.rt, limit)

    @tool(READ)
    async def get_trial(
        self, exp_id: Annotated[int, Field(ge=0, le=MAX_INT, description="the trial's exp id")],
    ) -> TrialInfo:
        """Read one trial in full: hypothesis, expected delta, status, score, delta, margin,
        keep decision, failure summary, metrics and timings; a queued trial also gives its queue
        position, a running one its elapsed seconds. With the lineage off only the current best
        and your own trials can be read.

        Args:
            exp_id: the trial's exp id (0 is the baseline).

        Returns:
            The row; a queued trial also gives its queue position, a running one its elapsed time.

        Raises:
            ToolError: no such trial, or the arm hides it (lineage off: best and own rows only).
        """
        who = self.b.who()
        return await self.b.run(trials.trial_info, self.b.rt, who, exp_id)

    @tool(READ)
    async def list_trials(
        self,
        statuses: Annotated[list[Status] | None, Field(
            max_length=len(TrialStatus), description="only these statuses")] = None,
        author: Annotated[Text | None, Field(
            max_length=100, description="only rows by this specialist (a read filter)")] = None,
        parent_exp: Annotated[int | None, Field(ge=0, le=MAX_INT, description="only children of this exp id")] = None,
        offset: Annotated[int, Field(ge=0, le=MAX_INT, description="rows to skip (paging)")] = 0,
        limit: Annotated[int, Field(ge=1, le=trials.PAGE_MAX, description="rows per page")] = 50,
        newest_first: Annotated[bool, Field(description="newest exp ids first")] = True,
    ) -> TrialPage:
        """List trials with filters, one page at a time (text cut to 200 characters per row);
        `next_offset` gives the next page (None at the end). With the lineage off only the
        current best and your own trials are listed.

        Args:
            statuses: keep only these statuses, e.g. ["keep", "crash"].
            author: keep only rows by this specialist; this filters what you read, you always act as yourself.
            parent_exp: keep only trials built on this exp id.
            offset: rows to skip; limit: rows per page (max 100).
            newest_first: order by exp id, newest first.

        Returns:
            The page and `next_offset` (None at the end). Lineage off: the best and your own rows.
        """
        who = self.b.who()
        return await self.b.run(trials.list_visible, self.b.rt, who, statuses=statuses, author=author,
                           parent_exp=parent_exp, offset=offset, limit=limit, newest_first=newest_first)

    @tool(READ)
    async def get_tree(
        self,
        root_exp: Annotated[int | None, Field(
            ge=0, le=MAX_INT, description="only the subtree under this exp id")] = None,
        offset: Annotated[int, Field(ge=0, le=MAX_INT, description="tree rows to skip (paging)")] = 0,
        limit: Annotated[int, Field(ge=1, le=1_000, description="tree rows per page")] = 200,
    ) -> views.TextPage:
        """Read the research tree: every trial with its parent, depth and path, in preorder
        (tab-separated: exp_id, parent_exp, depth, path, specialist, status, score, delta, hypothesis).

        Args:
            root_exp: only the subtree rooted at this exp id.
            offset: rows to skip; limit: rows per page.

        Returns:
            A page of tree.tsv with `next_offset` (None at the end). Lineage off: only the best.
        """
        who = self.b.who()
        return await self.b.run(views.tree, self.b.rt, who, root_exp, offset, limit)

    @tool(READ)
    async def get_knowledge(
        self,
        name: Annotated[Text | None, Field(
            max_length=200, description="a knowledge file name; default KNOWLEDGE.md")] = None,
        offset: Annotated[int, Field(ge=0, le=MAX_INT, description="characters to skip")] = 0,
        limit: Annotated[int, Field(ge=1, le=views.MAX_CHARS, description="characters to return")] = 30_000,
    ) -> views.TextPage:
        """Read knowledge: KNOWLEDGE.md (the search's digest: research tree, the best's lineage and
        children, recent activity) by default, or one of the task's knowledge files by name.

        Args:
            name: "KNOWLEDGE.md" or a task knowledge file (the default page lists them).
            offset, limit: the character window to return.

        Returns:
            The text window and `next_offset` (None at the end).
        """
        self.b.who()
        return await self.b.run(views.knowledge, self.b.rt, name, offset, limit)

    @resource("lineage://leaderboard", mime_type="text/markdown", name="leaderboard")
    async def leaderboard(self) -> str:
        """LEADERBOARD.md: the current best and the top kept trials."""
        return await self.b.run(views.leaderboard, self.b.rt)

    @resource("lineage://knowledge", mime_type="text/markdown", name="knowledge")
    async def knowledge(self) -> str:
        """KNOWLEDGE.md: research tree, the best's lineage and children, recent activity."""
        return await self.b.run(views.digest_text, self.b.rt)

    @prompt()
    async def specialist_brief(self) -> str:
        """The full system prompt for you: task rules and limits, your role's scope, how to read
        the lineage (or that it is hidden in this arm), and the task's knowledge files."""
        who = self.b.who()
        return await self.b.run(views.brief, self.b.rt, who, self.b.tools)

    @prompt()
    async def session_start(self) -> str:
        """The first message of a session: your lineage view and your workspace's state."""
        who = self.b.who()
        return await self.b.run(views.session_start, self.b.rt, who, self.b.tools)


def build_blackboard(b: Binding) -> FastMCP:
    """The blackboard server for one search, bound to `b` (see `servers._edge.Binding`)."""
    mcp = FastMCP("blackboard", instructions=render(INSTRUCTIONS, b.tools), lifespan=runtime_lifespan(b.rt),
                  **SERVER_OPTIONS)
    return register(mcp, BlackboardTools(b), b.tools)
