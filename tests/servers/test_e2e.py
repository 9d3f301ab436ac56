"""End to end: evaluator workers inside the serving process evaluate real trials."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from fastmcp import Client

from lineage.models import TrialStatus
from servers.app.runtime import SearchRuntime
from servers.suite import build_suite


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_workers_evaluate_submissions_and_rows_come_back(search: Path) -> None:
    rt = SearchRuntime.open(search, workers=1)
    standby = SearchRuntime.open(search, workers=1)
    try:
        async with Client(build_suite(rt, "opt")) as c, Client(build_suite(standby, "arch")) as other:
            await call(
                c,
                "submission_edit_workspace_file",
                {"path": "train.py", "old_text": "EPOCHS = 30", "new_text": "EPOCHS = 2"},
            )
            t0 = time.monotonic()
            sub = (
                await call(
                    c,
                    "submission_submit_trial",
                    {"hypothesis": "Two epochs are enough for the gate.", "expected_delta": -1.0},
                )
            ).structured_content
            assert time.monotonic() - t0 < 5 and sub["status"] == "queued"
            await call(other, "submission_write_workspace_file", {"path": "train.py", "content": "def f(:\n"})
            bad = (
                await call(other, "submission_submit_trial", {"hypothesis": "Broken.", "expected_delta": 0})
            ).structured_content
            info = sub
            for _ in range(10):
                info = (
                    await call(c, "submission_wait_trial", {"exp_id": sub["exp_id"], "timeout_s": 50})
                ).structured_content
                if info["finished"]:
                    break
            # exactly one process runs the workers at a time (the first to take the lock)
            assert rt._worker.holding.is_set() != standby._worker.holding.is_set()
    finally:
        rt.close()
        standby.close()
    assert bad["status"] == "preflight_crash"
    assert info["finished"] and info["status"] in ("keep", "discard", "disqualified", "train_budget_overrun")
    assert info["timings"] and info["specialist"] == "opt" and info["parent_exp"] == 0
    row = rt.store.get_trial(rt.search_id, sub["exp_id"])
    assert row.status.is_finished() and row.worker and row.status != TrialStatus.INFRA_ERROR


async def _until(flag, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.1)):
        if flag():
            return True
        await anyio.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_standby_process_takes_over_the_workers(search: Path) -> None:
    first, second = SearchRuntime.open(search, workers=1), SearchRuntime.open(search, workers=1)
    hold_first, hold_second = first.running(), second.running()
    try:
        await hold_first.__aenter__()
        assert await _until(lambda: first._worker.holding.is_set())
        await hold_second.__aenter__()
        await anyio.sleep(0.5)
        assert not second._worker.holding.is_set()
        await hold_first.__aexit__(None, None, None)
        assert await _until(lambda: second._worker.holding.is_set())
    finally:
        await hold_second.__aexit__(None, None, None)
        first.close()
        second.close()
