"""The closed loop end to end: supervisor + scripted specialists + real servers + real sandboxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.run import AgentChoice, ConfigMismatchError, ensure_search, run_search
from client.supervisor import RunLimits, request_stop
from lineage.models import TrialStatus
from lineage.state import StateDir
from tests.client.conftest import QUICK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _rows(state: Path):
    sd = StateDir.open(state)
    try:
        return sd.store.list_trials(sd.search_id, include_baseline=False), sd.store.list_sessions(sd.search_id)
    finally:
        sd.close()


async def test_scripted_search_runs_to_its_trial_budget(state):
    assert ensure_search(state, QUICK, roster="roles", lineage=True, margin_sigmas=0.0)
    progress = await run_search(state, AgentChoice.parse("scripted"), RunLimits(trials=9, stagger_s=0.1), slots=2, seed=1)
    assert progress.stop_reason == "trial budget"
    rows, sessions = _rows(state)
    assert [t.exp_id for t in rows] == list(range(1, 10))  # every submission has exactly one row
    assert {t.specialist for t in rows} == {"alpha", "beta", "gamma"}
    assert all(t.status.is_finished() for t in rows)
    assert any(t.status == TrialStatus.KEEP for t in rows)
    assert all(t.snapshot and t.hypothesis.startswith("set ") for t in rows)
    submitted = sorted(s.exp_id for s in sessions if s.exp_id is not None)
    assert submitted == list(range(1, 10))  # each session's trial is recorded with its session
    assert all(s.ended_at is not None and s.model == "scripted" for s in sessions)


async def test_resume_continues_ids_and_counts_the_budget_across_runs(state):
    ensure_search(state, QUICK, roster="roles", lineage=True)
    await run_search(state, AgentChoice.parse("scripted"), RunLimits(trials=3, stagger_s=0), seed=2)
    request_stop(state, "left over from an earlier run")  # stale: the next run clears it
    progress = await run_search(state, AgentChoice.parse("scripted"), RunLimits(trials=5, stagger_s=0), seed=3)
    assert progress.stop_reason == "trial budget"
    rows, _ = _rows(state)
    assert [t.exp_id for t in rows] == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigMismatchError, match="roster"):
        ensure_search(state, QUICK, roster="single", lineage=True)


async def test_stop_file_stops_the_search_gracefully(state):
    ensure_search(state, QUICK, roster="roles", lineage=True)
    limits = RunLimits(trials=1000, stagger_s=0, poll_s=0.1)
    import asyncio

    async def stop_soon() -> None:
        await asyncio.sleep(3)
        request_stop(state, "test")

    stopper = asyncio.create_task(stop_soon())
    progress = await run_search(state, AgentChoice.parse("scripted"), limits, seed=4)
    await stopper
    assert progress.stop_reason == "stop file"
    rows, _ = _rows(state)
    assert rows and all(t.status.is_finished() for t in rows)  # in-flight trials finished or cancelled
    assert (state / "STOP").exists()  # kept until the next run clears it as stale
