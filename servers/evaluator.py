"""The evaluator server: score a recipe in the sandboxed evaluator, as a job with an id.

Tools: evaluate, get_job, cancel_job, list_jobs, calibrate. `evaluate` and `calibrate` return
a job id within seconds; `get_job` waits at most `timeout_s` (capped at 50 s) with progress.
Runs alone (`autoresearch serve-evaluator --task NAME`, no search; one bearer token per
caller) for other agent systems, or, opted into, inside a search's suite (`serve --server all`).
There jobs are not trials (no lineage row, no trial budget) but each caller's runs are capped
for the whole search and recorded as events (`servers/app/_ledger.py`), and they lease slots
host-wide, never beside a trial. Jobs live in the server process's memory; each caller sees
and cancels only its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastmcp import Context, FastMCP
from fastmcp.server.auth import AuthProvider
from fastmcp.server.dependencies import get_access_token
from pydantic import Field

from servers._edge import (
    READ,
    SERVER_OPTIONS,
    WAIT_CAP_S,
    WRITE,
    Binding,
    Text,
    register,
    run_sync,
    runtime_lifespan,
    tool,
    wait_until,
)
from servers.app._archive import TreeLimits
from servers.app.jobs import MAX_RUNS, MAX_SEEDS, EvaluationJobs, JobView
from servers.names import render, tool_names

INSTRUCTIONS = (
    "A sandboxed evaluator: {evaluate}(files or archive_b64) returns a job id at once; {get_job}(job_id) waits "
    "up to 50 s per call and returns the outcome (status, score, metrics, timings, failure) when done."
)
JobId = Annotated[Text, Field(min_length=1, max_length=40, description="a job id from {evaluate} or {calibrate}")]
LIMITS = TreeLimits()
FileMap = dict[Annotated[str, Field(max_length=240)], Annotated[Text, Field(max_length=LIMITS.max_file_bytes)]]
TaskName = Annotated[Text | None, Field(max_length=100, description="task name; default: the served task")]


class EvaluatorTools:
    """The evaluator's tools over a service, with the caller as each job's owner."""

    def __init__(self, service: Callable[[], EvaluationJobs], who: Callable[[], str]) -> None:
        self.service = service
        self.who = who

    @tool(WRITE)
    async def evaluate(
        self,
        files: Annotated[FileMap | None, Field(
            max_length=LIMITS.max_files, description="{relative path: file text} of the recipe tree")] = None,
        archive_b64: Annotated[Text | None, Field(
            max_length=4_100_000, description="base64 tar(.gz) or zip of the tree")] = None,
        task: TaskName = None,
        seeds: Annotated[int | None, Field(ge=1, le=MAX_SEEDS, description="seeds; default: the task's")] = None,
    ) -> JobView:
        """Queue an evaluation of a recipe tree in the sandboxed evaluator; returns a job id within
        seconds. Poll it with {get_job}.

        Send the whole editable tree, either as `files` or as `archive_b64` (regular files
        only; at most 500 files, 4,000,000 bytes each, 3,000,000 bytes compressed). Inside a
        search, an evaluation is not a trial: it writes no lineage row and spends no trial budget,
        but it counts against your evaluator runs for the search.

        Returns:
            The job (state queued or running); poll it with {get_job}.
        """
        owner = self.who()
        return await run_sync(lambda: self.service().evaluate(owner, files=files, archive_b64=archive_b64,
                                                         task=task, seeds=seeds))

    @tool(READ)
    async def get_job(
        self,
        job_id: JobId,
        ctx: Context,
        timeout_s: Annotated[float, Field(
            ge=0, le=3_600, description=f"seconds to wait; capped at {WAIT_CAP_S:.0f}")] = 45,
    ) -> JobView:
        """Wait for a job, at most `timeout_s` seconds (capped at 50), reporting progress.

        Returns the finished job with its outcome (status, score, metrics, timings, failure) or
        calibration, or else its current state when the wait ends: then call {get_job} again.
        """
        owner = self.who()
        return await wait_until(lambda: self.service().get(owner, job_id), lambda j: j.finished, timeout_s, ctx,
                                lambda j: f"job {job_id}: {j.state} {j.progress}")

    @tool(WRITE)
    async def cancel_job(self, job_id: JobId) -> JobView:
        """Cancel a queued or running job of yours (a running sandbox is killed)."""
        owner = self.who()
        return await run_sync(lambda: self.service().cancel(owner, job_id))

    @tool(READ)
    async def list_jobs(self) -> list[JobView]:
        """List your jobs in this server process, oldest first (the last 50; {get_job} shows a job's log tail)."""
        owner = self.who()
        return await run_sync(lambda: self.service().list(owner))

    @tool(WRITE)
    async def calibrate(
        self,
        task: TaskName = None,
        seeds: Annotated[int | None, Field(
            ge=1, le=MAX_RUNS, description="runs of the unmodified recipe; default: the task's")] = None,
    ) -> JobView:
        """Measure the noise of the unmodified recipe: `seeds` runs with disjoint seeds; returns a job id.

        Returns:
            The job; when finished, {get_job} gives the calibration (mean score, spread, per-run scores).
        """
        owner = self.who()
        return await run_sync(lambda: self.service().calibrate(owner, task=task, runs=seeds))


def _token_owner() -> str:
    token = get_access_token()
    return token.client_id if token is not None else "local"


def build_evaluator(service: EvaluationJobs, *, auth: AuthProvider | None = None) -> FastMCP:
    """The evaluator alone, for `service`; closing the server closes the service."""
    from fastmcp.server.lifespan import lifespan

    @lifespan
    async def close_on_exit(server: Any) -> Any:
        try:
            yield {"evaluator": service}
        finally:
            await run_sync(service.close)

    names = tool_names(mounted=False)
    mcp = FastMCP("evaluator", instructions=render(INSTRUCTIONS, names), auth=auth, lifespan=close_on_exit,
                  **SERVER_OPTIONS)
    return register(mcp, EvaluatorTools(lambda: service, _token_owner), names)


def build_search_evaluator(b: Binding) -> FastMCP:
    """The evaluator of a search's suite: jobs run on the search's backend, owned by the caller
    (over stdio without --specialist, by "local")."""
    def owner() -> str:
        return b.who() if b.specialist or get_access_token() is not None else "local"

    mcp = FastMCP("evaluator", instructions=render(INSTRUCTIONS, b.tools), lifespan=runtime_lifespan(b.rt),
                  **SERVER_OPTIONS)
    return register(mcp, EvaluatorTools(b.rt.jobs, owner), b.tools)
