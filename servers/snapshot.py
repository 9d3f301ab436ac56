"""The snapshot server: read and diff the files earlier trials ran, and rebase onto one.

Tools: list_snapshot_files, read_snapshot, diff_snapshots, rebase_to. With the lineage off the
three read tools are not offered (and refuse if called), and rebase_to reaches only the best.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from servers.app import trees
from servers._edge import (
    HIDDEN_WITHOUT_LINEAGE,
    MAX_INT,
    READ,
    REPLACE,
    SERVER_OPTIONS,
    Binding,
    Text,
    register,
    runtime_lifespan,
    tool,
)
from servers.models import RebaseResult, SnapshotDiffInfo, SnapshotListing, SnapshotText

INSTRUCTIONS = "Read the code of earlier trials of the search, and rebase your workspace onto a kept trial."
Exp = Annotated[int, Field(ge=0, le=MAX_INT, description="a trial's exp id")]
Path_ = Annotated[Text, Field(
    min_length=1, max_length=240, description="a file path inside the snapshot, e.g. train.py")]


class SnapshotTools:
    """The snapshot server's tools for one binding."""

    def __init__(self, b: Binding) -> None:
        self.b = b


    @tool(READ)
    async def list_snapshot_files(self, exp_id: Exp) -> SnapshotListing:
        """List the files trial `exp_id` submitted, with their sizes.

        Args:
            exp_id: the trial's exp id (0 is the starting recipe).

        Raises:
            ToolError: no such trial, no stored files, or the arm hides snapshots.
        """
        who = self.b.who()
        return await self.b.run(trees.list_files, self.b.rt, who, exp_id)

    @tool(READ)
    async def read_snapshot(
        self,
        exp_id: Exp,
        path: Path_,
        offset: Annotated[int, Field(ge=1, le=MAX_INT, description="first line to return (1-based)")] = 1,
        limit: Annotated[int, Field(ge=1, le=2_000, description="number of lines")] = 400,
    ) -> SnapshotText:
        """Read lines of one file exactly as trial `exp_id` submitted it, with the file's total
        line count and `next_offset` to read on (None at the end).

        Args:
            exp_id: the trial's exp id. path: the file, relative to the recipe root.
            offset: first line (1-based); limit: number of lines (the text is also bounded to 60,000 characters).

        Returns:
            The lines, the file's total line count and `next_offset` (None at the end).
        """
        who = self.b.who()
        return await self.b.run(trees.read, self.b.rt, who, exp_id, path, offset, limit)

    @tool(READ)
    async def diff_snapshots(
        self,
        exp_id: Annotated[int, Field(ge=0, le=MAX_INT, description="the trial whose changes to show")],
        base_exp: Annotated[int | None, Field(
            ge=0, le=MAX_INT, description="compare against this trial; default: its parent")] = None,
        max_chars: Annotated[int, Field(ge=1_000, le=60_000, description="size bound of the diff")] = 20_000,
    ) -> SnapshotDiffInfo:
        """Show what trial `exp_id` changed: a unified diff from `base_exp` (default its parent) to it.

        Args:
            exp_id: the trial to inspect. base_exp: the trial to compare against.
            max_chars: bound on the diff text; files beyond it are named, not shown.

        Returns:
            The diff, the changed files and whether it was cut.
        """
        who = self.b.who()
        return await self.b.run(trees.diff, self.b.rt, who, exp_id, base_exp, max_chars)

    @tool(REPLACE)
    async def rebase_to(self, exp_id: Annotated[int, Field(
        ge=0, le=MAX_INT, description="a kept trial's exp id (keep or baseline)")]) -> RebaseResult:
        """Replace your whole workspace with the files of a kept trial; it becomes your next parent.

        Unsubmitted changes in your workspace are lost. With the lineage off only the current
        best is accepted.

        Args:
            exp_id: a trial with status keep or baseline.

        Raises:
            ToolError: the trial is not kept, has no files, or the arm allows only the best.
        """
        who = self.b.who()
        return await self.b.run(trees.rebase, self.b.rt, who, exp_id)


def build_snapshot(b: Binding) -> FastMCP:
    """The snapshot server for one search, bound to `b`."""
    mcp = FastMCP("snapshot", instructions=INSTRUCTIONS, lifespan=runtime_lifespan(b.rt), **SERVER_OPTIONS)
    register(mcp, SnapshotTools(b), b.tools)
    if not b.rt.config.lineage:
        mcp.disable(names=set(HIDDEN_WITHOUT_LINEAGE))
    return mcp
