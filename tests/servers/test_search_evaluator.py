"""A search's evaluator is an opt-in, capped per caller and recorded (issue 8, item 7).

Jobs here run on a real `LocalBackend` whose only slot is already leased (they stay queued
until cancelled), over a real SQLite lineage, so the cap and the events are the real ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastmcp import Client
from typer.testing import CliRunner

from client.cli import app
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.slots import SlotPool
from servers.app._ledger import SearchLedger
from servers.exceptions import RequestError
from servers.app.jobs import EvaluationJobs
from servers.app.runtime import SearchRuntime
from servers.suite import build_server, build_suite
from tasks.registry import get_task
from tests.servers.conftest import TASK

TREE = {"train.py": "print('hello')\n"}


async def tool_names(server) -> set[str]:  # type: ignore[no-untyped-def]
    async with Client(server) as c:
        return {t.name for t in await c.list_tools()}


async def test_the_default_suite_has_no_evaluator(rt: SearchRuntime) -> None:
    default = await tool_names(build_suite(rt, "opt"))
    suite = await tool_names(build_server("suite", rt, "opt"))
    everything = await tool_names(build_server("all", rt, "opt"))
    assert default == suite and not any(n.startswith("evaluator_") for n in default)
    assert {"evaluator_evaluate", "submission_submit_trial"} <= everything


def test_mcp_config_starts_the_suite_without_evaluator_by_default(search: Path) -> None:
    import json

    out = CliRunner().invoke(app, ["mcp-config", "--state", str(search), "--specialist", "opt",
                                   "--client", "claude-code"])
    args = json.loads(out.output)["mcpServers"]["autoresearch"]["args"]
    assert args[args.index("--server") + 1] == "suite"


async def test_a_search_evaluator_refuses_a_caller_past_its_cap(search: Path) -> None:
    rt = SearchRuntime.open(search, workers=0)
    rt.evaluator_runs = 0
    try:
        async with Client(build_suite(rt, "opt", servers=("submission", "evaluator"))) as c:
            res = await c.call_tool("evaluator_evaluate", {"files": TREE}, raise_on_error=False)
    finally:
        rt.close()
    text = res.content[0].text
    assert res.is_error and "used 0 of your 0 evaluator runs" in text and "submission_submit_trial" in text


@pytest.fixture
def held_service(rt: SearchRuntime, tmp_path: Path):  # type: ignore[no-untyped-def]
    pool = SlotPool([], cpu_slots=1)
    pool.acquire(1)
    backend = LocalBackend(LocalBackendConfig(workdir=tmp_path / "w", data_root=tmp_path / "d"), pool=pool)
    svc = EvaluationJobs(rt.layout.submissions, default_task=get_task(TASK), backend=backend,
                           ledger=SearchLedger(rt.store, rt.search_id, cap=3))
    yield svc
    svc.close()
    backend.close()


def events(rt: SearchRuntime, kind: str) -> list[tuple[str | None, dict]]:
    return [(e.specialist, e.payload) for e in rt.store.list_events(rt.search_id) if e.kind == kind]


def test_jobs_count_against_the_callers_cap_and_are_recorded(rt: SearchRuntime, held_service) -> None:  # type: ignore[no-untyped-def]
    svc: EvaluationJobs = held_service
    job = svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
    cal = svc.calibrate("opt", task=None, runs=2)
    with pytest.raises(RequestError, match="used 3 of your 3 evaluator runs"):
        svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
    assert svc.evaluate("reg", files=TREE, archive_b64=None, task=None, seeds=1).state == "queued"
    assert [(who, p["job_id"], p["runs"]) for who, p in events(rt, "evaluator_job")] == [
        ("opt", job.job_id, 1), ("opt", cal.job_id, 2), ("reg", svc.list("reg")[0].job_id, 1)]
    svc.cancel("opt", job.job_id)
    deadline = time.monotonic() + 3
    while not events(rt, "evaluator_job_done") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events(rt, "evaluator_job_done") == [("opt", {"job_id": job.job_id, "state": "cancelled",
                                                        "status": "cancelled", "score": None})]
    # the cap is the search's, not the process's: cancelling gives nothing back, another process agrees
    assert SearchLedger(rt.store, rt.search_id, cap=3).used("opt") == 3
    with pytest.raises(RequestError, match="used 3 of your 3"):
        svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)


async def test_a_search_leases_its_slots_host_wide(rt: SearchRuntime) -> None:
    """Its trials and any serve process's evaluator jobs take slots from one host-wide lease."""
    async with rt.running():
        pool = rt.jobs().backend.pool
        assert pool is rt.backend().pool and pool.lock_dir is not None
