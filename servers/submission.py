"""The submission server: edit your private workspace, check it, submit it, wait for it.

Tools: list_workspace, read_workspace_file, edit_workspace_file, write_workspace_file,
workspace_diff, syntax_check, preflight, submit_trial, wait_trial. Every tool acts on the
caller's own workspace and rows; paths are relative to the workspace and checked.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import Context, FastMCP
from pydantic import Field

from servers.app import trials
from servers._edge import (
    MAX_INT,
    READ,
    SERVER_OPTIONS,
    WAIT_CAP_S,
    WRITE,
    Binding,
    Text,
    register,
    runtime_lifespan,
    tool,
    wait_until,
)
from servers.models import (
    EditResult,
    FileSlice,
    PreflightInfo,
    SubmitResult,
    SyntaxInfo,
    TrialInfo,
    WorkspaceDiff,
    WorkspaceListing,
    WriteResult,
)
from servers.names import render


INSTRUCTIONS = (
    "Your private workspace of the recipe: read and edit it, check it, then {submit_trial} and {wait_trial}. "
    "Paths are relative to the workspace, e.g. train.py."
)
Path_ = Annotated[Text, Field(
    min_length=1, max_length=240, description="a file path relative to your workspace, e.g. train.py")]


class SubmissionTools:
    """The submission server's tools for one binding."""

    def __init__(self, b: Binding) -> None:
        self.b = b


    @tool(READ)
    async def list_workspace(self) -> WorkspaceListing:
        """List your workspace: every file with its size, whether you may edit it and whether it
        differs from the trial you last rebased to (`parent_exp`, the parent of your next submission)."""
        who = self.b.who()
        return await self.b.run(lambda: self.b.rt.workspace(who).listing())

    @tool(READ)
    async def read_workspace_file(
        self,
        path: Path_,
        offset: Annotated[int, Field(ge=1, le=MAX_INT, description="first line to return (1-based)")] = 1,
        limit: Annotated[int, Field(ge=1, le=2_000, description="number of lines")] = 400,
    ) -> FileSlice:
        """Read lines of a file in your workspace (raw text, no line-number prefixes), with the
        file's total line count and `next_offset` to read on (None at the end).

        Args:
            path: the file, e.g. "train.py". offset: first line (1-based). limit: number of lines;
                the text is also bounded to 60,000 characters.

        Returns:
            The lines, the file's total line count and `next_offset` (None at the end).
        """
        who = self.b.who()
        return await self.b.run(lambda: self.b.rt.workspace(who).read(path, offset, limit))

    @tool(WRITE)
    async def edit_workspace_file(
        self,
        path: Path_,
        old_text: Annotated[Text, Field(
            max_length=1_000_000, description="the exact text to replace, whitespace included")],
        new_text: Annotated[Text, Field(max_length=1_000_000, description="the replacement text")],
        replace_all: Annotated[bool, Field(description="replace every occurrence instead of exactly one")] = False,
    ) -> EditResult:
        """Replace an exact piece of text in one of your editable files.

        `old_text` must occur exactly once (or set replace_all). Copy it from {read_workspace_file},
        including indentation and line breaks.

        Raises:
            ToolError: old_text absent or ambiguous (with the matching lines), file not editable,
                or the result over the file-size limit.
        """
        who = self.b.who()
        return await self.b.run(lambda: self.b.rt.workspace(who).edit(path, old_text, new_text, replace_all))

    @tool(WRITE)
    async def write_workspace_file(
        self,
        path: Path_,
        content: Annotated[Text, Field(max_length=1_000_000, description="the whole new file content (UTF-8 text)")],
    ) -> WriteResult:
        """Create or overwrite a whole editable file in your workspace (max 1,000,000 bytes).
        Prefer {edit_workspace_file} for changes to an existing file."""
        who = self.b.who()
        return await self.b.run(lambda: self.b.rt.workspace(who).write(path, content))

    @tool(READ)
    async def workspace_diff(self) -> WorkspaceDiff:
        """Show your uncommitted changes: a unified diff from the trial you last rebased to
        (`parent_exp`) to your workspace now, bounded to 60,000 characters."""
        who = self.b.who()
        return await self.b.run(lambda: self.b.rt.workspace(who).diff())

    @tool(READ)
    async def syntax_check(self) -> SyntaxInfo:
        """Compile every editable Python file of your workspace; lists 'path:line: message' per error."""
        who = self.b.who()
        return await self.b.run(trials.syntax_workspace, self.b.rt, who)

    @tool(READ)
    async def preflight(self) -> PreflightInfo:
        """Run the task's preflight on your workspace: the same checks {submit_trial} runs (syntax,
        the artifact-size projection and any task rule). A failing trial would be recorded as
        preflight_crash or size_blocked without running."""
        who = self.b.who()
        return await self.b.run(trials.preflight_workspace, self.b.rt, who)

    @tool(WRITE)
    async def submit_trial(
        self,
        hypothesis: Annotated[Text, Field(
            max_length=trials.HYPOTHESIS_MAX, description="one sentence: the change and why it should help")],
        expected_delta: Annotated[float, Field(
            description="your signed prediction of the metric change, in metric units")],
        notes: Annotated[Text, Field(
            max_length=trials.NOTES_MAX, description="optional context for later readers")] = "",
    ) -> SubmitResult:
        """Submit your workspace as a trial; returns within seconds with its exp id and queue position.

        The workspace is snapshotted, the task's preflight runs on the snapshot, and the row is
        queued for the evaluator (or recorded at once as preflight_crash / size_blocked). Its
        parent is the trial you last rebased to. Then call {wait_trial}.

        Args:
            hypothesis: one sentence (max 2,000 characters).
            expected_delta: signed, in metric units (for a lower-is-better metric, negative = better).
            notes: optional (max 4,000 characters).
        """
        who = self.b.who()
        return await self.b.run(trials.submit, self.b.rt, who, hypothesis, expected_delta, notes)

    @tool(READ)
    async def wait_trial(
        self,
        exp_id: Annotated[int, Field(ge=0, le=MAX_INT, description="the exp id {submit_trial} returned")],
        ctx: Context,
        timeout_s: Annotated[float, Field(
            ge=0, le=3_600, description=f"seconds to wait; capped at {WAIT_CAP_S:.0f}")] = 45,
    ) -> TrialInfo:
        """Wait for a trial to finish, at most `timeout_s` seconds (capped at 50), reporting progress.

        Returns the finished row (status, score, delta, margin, decision, failure, timings) as
        soon as it is final; or as soon as it is `confirming`: scored, it beat the best by more
        than the margin, and the evaluator now re-runs it against the best before it is kept
        (its final status comes later: you may move on to your next change meanwhile). Else
        its current state when the wait ends: queued (with its queue position) or running (with
        elapsed seconds). Then call {wait_trial} again.

        Args:
            exp_id: the exp id from {submit_trial}.
            timeout_s: how long to wait in this call.
        """
        who, watch = self.b.who(), self.b.rt.watch()
        return await wait_until(
            lambda: trials.trial_info(self.b.rt, who, exp_id), lambda t: t.settled,
            timeout_s, ctx,
            lambda t: f"exp {exp_id}: {t.status}" + (f", {t.queue_position} ahead" if t.queue_position else ""),
            changed=lambda t, seconds: watch.changed(exp_id, t.status, seconds),
        )



def build_submission(b: Binding) -> FastMCP:
    """The submission server for one search, bound to `b`."""
    mcp = FastMCP("submission", instructions=render(INSTRUCTIONS, b.tools), lifespan=runtime_lifespan(b.rt),
                  **SERVER_OPTIONS)
    return register(mcp, SubmissionTools(b), b.tools)
