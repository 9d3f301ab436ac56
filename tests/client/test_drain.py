"""Stopping never cancels a trial the search accepted, except at the deadline.

Trials of `SLOW` take about a second each on one slot, and sessions get a grace period far
shorter than that, so when the search stops, trials are still queued behind the running one.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

from client.display import render, snapshot
from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits, request_stop
from lineage.models import TrialStatus
from lineage.state import StateDir
from servers.app.init import Baseline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
SLOW = "tests.client.quicktask.task:SLOW"
STUCK = "tests.client.quicktask.task:STUCK"


def _store_read(state: Path, fn):  # noqa: ANN001, ANN202
    sd = StateDir.open(state)
    try:
        return fn(sd.store, sd.search_id)
    finally:
        sd.close()


def _rows(state: Path):  # noqa: ANN202
    return _store_read(state, lambda st, sid: st.list_trials(sid, include_baseline=False))


def _events(state: Path, kind: str):  # noqa: ANN202
    return _store_read(state, lambda st, sid: [e for e in st.list_events(sid) if e.kind == kind])


async def _when_unfinished(state: Path, n: int, then) -> None:  # noqa: ANN001
    """Call `then()` once at least `n` trials wait to be (or are being) evaluated."""
    while True:
        unfinished = [t for t in await asyncio.to_thread(_rows, state) if not t.status.is_finished()]
        if len(unfinished) >= n:
            then()
            return
        await asyncio.sleep(0.05)


async def _run(state: Path, limits: RunLimits, trigger=None, frames: list[str] | None = None):  # noqa: ANN001, ANN202
    def show(sup) -> None:  # noqa: ANN001 - what the live view of `autoresearch run` prints
        console = Console(record=True, width=200, file=io.StringIO())
        console.print(render(snapshot(sup.store, sup.sid, sup.progress)))
        (frames if frames is not None else []).append(console.export_text())

    stopper = asyncio.create_task(_when_unfinished(state, 2, trigger)) if trigger else None
    progress = await run_search(state, AgentChoice.parse("scripted"), limits, slots=1, seed=11, on_tick=show)
    if stopper:
        await stopper
    return progress


@pytest.mark.parametrize("how", ["trial budget", "stop file", "SIGINT"])
async def test_a_stop_evaluates_every_accepted_trial_however_long_after_the_grace(state, how):
    ensure_search(state, SLOW, roster="roles", lineage=True, baseline=Baseline(score=19.0))
    limits = RunLimits(trials=3 if how == "trial budget" else None, grace_s=0.2, stagger_s=0, poll_s=0.05)
    triggers = {"stop file": lambda: request_stop(state, "test"),
                "SIGINT": lambda: os.kill(os.getpid(), signal.SIGINT)}
    frames: list[str] = []
    progress = await _run(state, limits, triggers.get(how), frames)
    assert progress.stop_reason == how
    rows = _rows(state)
    assert len(rows) >= 3
    assert [t.status for t in rows if not t.status.is_finished() or t.status == TrialStatus.CANCELLED] == []
    assert all(t.score is not None for t in rows)  # each one evaluated and recorded, none cut short
    (drain,) = _events(state, "drain")
    assert drain.payload["reason"] == how and len(drain.payload["exp_ids"]) >= 1
    assert any(f"stopping: {how}; draining " in f and " accepted trial" in f for f in frames)
    assert f"stopped: {how}" in frames[-1]


async def test_the_deadline_cuts_evaluation_short_and_cancels_what_is_left(state):
    ensure_search(state, STUCK, roster="roles", lineage=True, baseline=Baseline(score=19.0))
    start = time.monotonic()
    # sessions submit within the grace period, then wait for trials that would take 30 s
    progress = await _run(state, RunLimits(deadline_s=1.0, grace_s=4.0, stagger_s=0, poll_s=0.05))
    took = time.monotonic() - start
    assert progress.stop_reason == "deadline"
    rows = _rows(state)
    assert rows and all(t.status == TrialStatus.CANCELLED for t in rows)  # each trial takes 30 s
    assert all("deadline" in t.failure for t in rows)
    assert 5.0 <= took < 15  # cut at deadline + grace: the running trial killed, not waited for
