"""Sessions that submit nothing back off, then pause their specialist; all paused stops the run.

The model is the real anthropic SDK against the fake Messages API; the scripted proposer runs
on a recipe in which it finds nothing to change.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from client.display import render, snapshot
from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits
from lineage.state import StateDir
from servers.app.init import Baseline
from tests.client.conftest import QUICK, cli
from tests.client.fake_anthropic import FakeMessagesAPI, text, tool_use

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
NO_TUNABLES = "tests.client.quicktask.task:NO_TUNABLES"


def _read(state: Path):  # noqa: ANN202
    sd = StateDir.open(state)
    try:
        return sd.store.list_sessions(sd.search_id), sd.store.list_events(sd.search_id)
    finally:
        sd.close()


def _llm(api: FakeMessagesAPI) -> AgentChoice:
    return AgentChoice.parse("anthropic:claude-opus-4-8", base_url=api.base_url)


def _screen(state: Path, progress) -> str:  # noqa: ANN001
    sd = StateDir.open(state)
    try:
        console = Console(record=True, width=200)
        console.print(render(snapshot(sd.store, sd.search_id, progress)))
        return console.export_text()
    finally:
        sd.close()


async def test_a_model_that_ends_its_turn_at_once_is_paused_and_the_run_stops(state, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    ensure_search(state, QUICK, roster="roles", lineage=True, baseline=Baseline(score=19.0))
    limits = RunLimits(deadline_s=10, backoff_s=0.1, stagger_s=0, poll_s=0.05)
    with FakeMessagesAPI(lambda body: ([text("I have nothing to add.")], "end_turn")) as api:
        progress = await run_search(state, _llm(api), limits, seed=0)
    assert progress.stop_reason == "no progress"
    assert len(api.requests) == 3 * 5  # five one-call sessions per specialist, then it is paused
    sessions, events = _read(state)
    assert Counter(s.specialist for s in sessions) == {"alpha": 5, "beta": 5, "gamma": 5}
    for name in ("alpha", "beta", "gamma"):
        mine = [s for s in sessions if s.specialist == name]
        waits = [(b.started_at - a.ended_at).total_seconds() for a, b in zip(mine, mine[1:], strict=False)]
        assert [round(w, 1) >= 0.1 * 2 ** k for k, w in enumerate(waits)] == [True] * 4  # 0.1, 0.2, 0.4, 0.8 s
    paused = {e.specialist: e.payload for e in events if e.kind == "specialist_paused"}
    assert set(paused) == {"alpha", "beta", "gamma"} and {p["sessions"] for p in paused.values()} == {5}
    assert "5 sessions in a row without a submission" in paused["alpha"]["reason"]
    assert "end_turn" in paused["alpha"]["reason"]
    screen = _screen(state, progress)
    assert "no progress" in screen and screen.count("paused: 5 sessions in a row") == 3


async def test_a_session_that_submits_resets_the_count(state, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    ensure_search(state, QUICK, roster="roles", lineage=True, baseline=Baseline(score=19.0))
    started: Counter[str] = Counter()

    def alpha_submits_every_third_session(body: dict) -> tuple[list[dict], str]:
        who = re.search(r"You are \*\*(\w+)\*\*", body["system"][0]["text"])[1]
        if len(body["messages"]) > 1:
            return [text("Submitted.")], "end_turn"
        started[who] += 1
        if who == "alpha" and started[who] % 3 == 0:
            args = {"hypothesis": f"try {started[who]}", "expected_delta": -1.0}
            return [tool_use("submission_submit_trial", args, n=started[who])], "tool_use"
        return [text("Nothing to add.")], "end_turn"

    limits = RunLimits(trials=2, deadline_s=20, pause_after=3, backoff_s=0.01, stagger_s=0, poll_s=0.05)
    with FakeMessagesAPI(alpha_submits_every_third_session) as api:
        progress = await run_search(state, _llm(api), limits, seed=0, specialists=["alpha", "beta"])
    assert progress.stop_reason == "trial budget"
    sessions, events = _read(state)
    assert [s.exp_id for s in sessions if s.specialist == "alpha"] == [None, None, 1, None, None, 2]
    assert [s.exp_id for s in sessions if s.specialist == "beta"] == [None] * 3
    assert [e.specialist for e in events if e.kind == "specialist_paused"] == ["beta"]
    assert list(progress.paused) == ["beta"]


def test_run_and_status_show_scripted_specialists_paused_with_nothing_to_try(state, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the live view's width in the child processes
    done = cli("run", "--task", NO_TUNABLES, "--state", str(state), "--baseline-score", "19", "--pause-after", "2",
               "--backoff", "0.05", "--backoff-max", "1", "--deadline", "40s", timeout=50)
    assert done.returncode == 3, done.stderr[-3000:]  # scripts can tell "no progress" from a normal stop
    assert "stopped: no progress" in done.stderr
    assert "alpha paused: 2 sessions in a row without a submission (last: nothing_new_to_try)" in done.stderr
    sessions, _ = _read(state)
    assert Counter(s.specialist for s in sessions) == {"alpha": 2, "beta": 2, "gamma": 2}
    assert {s.stop_reason for s in sessions} == {"nothing_new_to_try"}
    snap = cli("status", "--state", str(state), "--json")
    data = json.loads(snap.stdout)
    assert data["stop_reason"] == "no progress" and data["ended"] is True
    assert set(data["paused"]) == {"alpha", "beta", "gamma"}
    assert "2 sessions in a row" in data["paused"]["gamma"]
    once = cli("status", "--state", str(state), "--once")
    assert once.stdout.count("paused: 2 sessions in a row") == 3 and "stopped: no progress" in once.stdout
