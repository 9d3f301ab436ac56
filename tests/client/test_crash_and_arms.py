"""Crash safety of `autoresearch run` (kill -9, rerun), each arm, and the status/stop commands."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits
from lineage.models import TrialStatus
from lineage.state import StateDir
from tests.client.conftest import QUICK, cli, popen_cli

pytestmark = [pytest.mark.slow]


def _wait_for_running(state: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / "search.json").exists():
            sd = StateDir.open(state)
            try:
                running = sd.store.list_trials(sd.search_id, statuses=[TrialStatus.RUNNING])
            finally:
                sd.close()
            if running:
                return running[0].exp_id
        time.sleep(0.2)
    raise AssertionError("no trial started running")


@pytest.mark.timeout(240)
def test_kill_9_mid_trial_then_rerun_finishes_the_budget_without_loss(state):
    args = ["run", "--task", QUICK, "--state", str(state), "--trials", "4", "--concurrency", "1",
            "--calibration-seeds", "1", "--seed", "5", "--grace", "60s"]
    proc = popen_cli(*args, sleep_s=3.0)
    killed_exp = _wait_for_running(state)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done = cli(*args, sleep_s=0.5, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    sd = StateDir.open(state)
    rows = sd.store.list_trials(sd.search_id, include_baseline=False)
    assert [t.exp_id for t in rows] == [1, 2, 3, 4]  # nothing lost, nothing duplicated
    assert all(t.status.is_finished() and t.status != TrialStatus.CANCELLED for t in rows)
    interrupted = sd.store.get_trial(sd.search_id, killed_exp)
    assert "re-queued" in interrupted.notes and interrupted.attempts == 2
    assert all(s.ended_at is not None for s in sd.store.list_sessions(sd.search_id))
    assert any(s.stop_reason == "interrupted" for s in sd.store.list_sessions(sd.search_id))
    sd.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("roster", "lineage", "names"), [
    ("roles", True, {"alpha", "beta", "gamma"}),
    ("generic", True, {"agent1", "agent2", "agent3"}),
    ("single", True, {"generalist"}),
    ("roles", False, {"alpha", "beta", "gamma"}),
])
async def test_each_arm_runs_and_its_specialists_see_only_what_it_allows(tmp_path, roster, lineage, names):
    state = tmp_path / "s"
    ensure_search(state, QUICK, roster=roster, lineage=lineage)
    await run_search(state, AgentChoice.parse("scripted"), RunLimits(trials=4, stagger_s=0), seed=7)
    from fastmcp import Client

    from servers.app.runtime import SearchRuntime
    from servers.suite import SPECIALIST_SERVERS, build_suite

    rt = SearchRuntime.open(state, workers=0)
    try:
        assert set(rt.config.roster) == names
        rows = rt.store.list_trials(rt.search_id, include_baseline=False)
        assert len(rows) == 4 and {t.specialist for t in rows} <= names
        who = sorted(names)[0]
        async with Client(build_suite(rt, who, servers=SPECIALIST_SERVERS)) as c:
            brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
            view = (await c.call_tool("blackboard_get_lineage_view", {})).content[0].text
            listed = (await c.call_tool("blackboard_list_trials", {"limit": 100})).structured_content["trials"]
            hidden = await c.call_tool("snapshot_read_snapshot", {"exp_id": 0, "path": "train.py"}, raise_on_error=False)
        best = rt.search().best_exp_id
        if lineage:
            assert "Leaderboard" in view
            assert len(listed) == 5 and not hidden.is_error
        else:
            assert "hidden" in view.lower() and "hidden" in brief.lower()
            assert {r["exp_id"] for r in listed} <= {best} | {t.exp_id for t in rows if t.specialist == who}
            assert hidden.is_error
        if roster == "roles":
            assert "X specialist" in brief
        else:
            assert "X specialist" not in brief and "Y specialist" not in brief
    finally:
        rt.close()


@pytest.mark.timeout(120)
def test_status_and_stop_commands(state):
    ensure_search(state, QUICK, roster="roles", lineage=True)
    snap = cli("status", "--state", str(state), "--json")
    assert snap.returncode == 0, snap.stderr
    data = json.loads(snap.stdout)
    assert (data["task"], data["trials"], data["best_exp"]) == (QUICK, 0, 0)
    assert cli("status", "--state", str(state), "--once").returncode == 0
    proc = popen_cli("run", "--task", QUICK, "--state", str(state), "--trials", "1000", "--grace", "30s")
    _wait_for_running(state)
    stopped = cli("stop", "--state", str(state))
    assert stopped.returncode == 0 and "stop requested" in stopped.stdout
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped: stop file" in err
    sd = StateDir.open(state)
    rows = sd.store.list_trials(sd.search_id, include_baseline=False)
    assert rows and all(t.status.is_finished() for t in rows)
    sd.close()
    assert cli("status", "--state", str(state / "nope"), "--json").returncode == 2
