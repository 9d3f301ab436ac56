"""Every stop condition of the supervisor, and what stopping leaves behind."""

from __future__ import annotations

import os
import signal
import time

import pytest

from client.agent import SessionConfig
from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits
from lineage.models import TrialStatus
from lineage.state import StateDir
from tests.client.conftest import QUICK, cli, popen_cli
from tests.client.fake_anthropic import FakeMessagesAPI, tool_use
from tests.client.test_crash_and_arms import _wait_for_running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _finished_rows(state):
    sd = StateDir.open(state)
    try:
        return sd.store.list_trials(sd.search_id, include_baseline=False)
    finally:
        sd.close()


async def test_deadline_stops_the_run(state):
    ensure_search(state, QUICK, roster="roles", lineage=True)
    start = time.monotonic()
    progress = await run_search(state, AgentChoice.parse("scripted"), RunLimits(deadline_s=2.0, poll_s=0.1), seed=1)
    assert progress.stop_reason == "deadline" and time.monotonic() - start < 60
    assert all(t.status.is_finished() for t in _finished_rows(state))


async def test_patience_stops_a_run_without_keeps(state):
    from servers.app.init import Baseline

    # a baseline no trial can beat: every trial is a discard, so patience runs out
    ensure_search(state, QUICK, roster="roles", lineage=True, baseline=Baseline(score=0.5))
    progress = await run_search(state, AgentChoice.parse("scripted"), RunLimits(patience_s=2.0, poll_s=0.1), seed=2)
    assert progress.stop_reason == "patience"
    assert not [t for t in _finished_rows(state) if t.status == TrialStatus.KEEP]


async def test_spend_cap_stops_llm_sessions(state, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    ensure_search(state, QUICK, roster="roles", lineage=True)

    def chatty(body):  # looks around forever; each turn costs tokens
        n = sum(m["role"] == "assistant" for m in body["messages"])
        return [tool_use("blackboard_get_leaderboard", {}, n)], "tool_use"

    with FakeMessagesAPI(chatty, usage={"input_tokens": 200_000, "output_tokens": 1_000}) as api:
        choice = AgentChoice.parse("anthropic:claude-opus-4-8", base_url=api.base_url,
                                   session=SessionConfig(max_tool_turns=3))
        progress = await run_search(state, choice, RunLimits(budget_usd=3.0, concurrency=1, poll_s=0.1), seed=3)
    assert progress.stop_reason == "spend cap"
    sd = StateDir.open(state)
    spent = sum(s.cost_usd for s in sd.store.list_sessions(sd.search_id))
    sd.close()
    # each session: 3 turns x (200k in x $5/M + 1k out x $25/M) = $3.075 >= the cap after one session
    assert spent == pytest.approx(3 * (1.0 + 0.025)) and progress.spend_usd >= 3.0


def test_first_signal_stops_gracefully_second_stops_at_once(state):
    args = ["run", "--task", QUICK, "--state", str(state), "--trials", "1000", "--grace", "60s"]
    proc = popen_cli(*args, sleep_s=2.0)
    _wait_for_running(state)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped: SIGINT" in err
    rows = _finished_rows(state)
    assert rows and all(t.status.is_finished() for t in rows)  # nothing left queued or running

    proc = popen_cli(*args, sleep_s=5.0)
    _wait_for_running(state)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode == 130  # at once, with the trial still running
    left = [t for t in _finished_rows(state) if not t.status.is_finished()]
    assert left  # ... which the next start reconciles
    done = cli("run", "--task", QUICK, "--state", str(state), "--trials", str(len(_finished_rows(state))),
               sleep_s=0.1, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    again = {t.exp_id: t for t in _finished_rows(state)}
    for t in left:  # evaluated on resume, not dropped and not cancelled
        assert again[t.exp_id].status.is_finished() and again[t.exp_id].status != TrialStatus.CANCELLED
        if t.status == TrialStatus.RUNNING:
            assert "re-queued" in again[t.exp_id].notes
    assert os.path.exists(state / "logs" / "run.log")
