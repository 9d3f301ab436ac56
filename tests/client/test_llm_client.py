"""The thin LLM client end to end: the real anthropic SDK against a fake Messages API.

The fake (an HTTP server on loopback, reached through `base_url`) scripts a specialist that
reads the lineage, reads and edits the recipe, runs preflight, submits and waits. The trial
must land under that specialist's name, the session's token counts must land, and every
request must carry the prompt-caching markers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from client.agent import SessionConfig
from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits
from lineage.state import StateDir
from tests.client.conftest import QUICK, run_until_hung_then_stop
from tests.client.fake_anthropic import FakeMessagesAPI, last_tool_result_text, text, tool_use

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
OLD = "X = 0.0  # tunable float [-10, 10]"
NEW = "X = 2.5  # tunable float [-10, 10]"


def specialist_script(body: dict) -> tuple[list[dict], str]:
    """One scripted specialist; the step is the number of assistant turns so far."""
    step = sum(m["role"] == "assistant" for m in body["messages"])
    seen = last_tool_result_text(body)
    plan = [
        ("blackboard_get_lineage_view", {}),
        ("submission_read_workspace_file", {"path": "train.py"}),
        ("submission_edit_workspace_file", {"path": "train.py", "old_text": OLD, "new_text": NEW}),
        ("submission_preflight", {}),
        ("submission_submit_trial", {"hypothesis": "Move X towards the bowl's centre.", "expected_delta": -10.0}),
    ]
    if step < len(plan):
        return [text(f"step {step}"), tool_use(*plan[step], n=step)], "tool_use"
    if step == len(plan):
        exp = int(re.search(r'"exp_id":\s*(\d+)', seen).group(1))
        return [tool_use("submission_wait_trial", {"exp_id": exp, "timeout_s": 30}, n=step)], "tool_use"
    return [text("The trial finished; X moved closer. Done.")], "end_turn"


async def test_llm_specialist_reads_edits_submits_and_waits(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    state = tmp_path / "search"
    ensure_search(state, QUICK, roster="roles", lineage=True)
    with FakeMessagesAPI(specialist_script) as api:
        choice = AgentChoice.parse("anthropic:claude-opus-4-8", base_url=api.base_url,
                                   session=SessionConfig(max_tool_turns=12, time_limit_s=60))
        progress = await run_search(state, choice, RunLimits(trials=1, concurrency=1, stagger_s=0), seed=0)
    assert progress.stop_reason == "trial budget"
    sd = StateDir.open(state)
    (trial,) = sd.store.list_trials(sd.search_id, include_baseline=False)
    assert (trial.specialist, trial.hypothesis, trial.expected_delta) == ("alpha", "Move X towards the bowl's centre.", -10.0)
    assert trial.status.value == "keep" and trial.score == pytest.approx(1 + 0.25 + 9)  # (2.5-3)^2 + (2+1)^2 + 1
    assert NEW in sd.snapshots.read_file(trial.snapshot, "train.py").decode()
    (session,) = [s for s in sd.store.list_sessions(sd.search_id) if s.exp_id is not None]
    turns = 7  # five tools, the wait, the final answer
    assert (session.specialist, session.model, session.exp_id) == ("alpha", "claude-opus-4-8", trial.exp_id)
    assert (session.tokens_in, session.tokens_out, session.cache_read, session.cache_write) == (
        100 * turns, 20 * turns, 400 * turns, 50 * turns)
    assert session.cost_usd > 0 and session.tool_calls == 6 and session.stop_reason == "end_turn"
    transcript = json.loads(Path(session.transcript).read_text())
    assert transcript["messages"][-1]["content"][0]["text"].startswith("The trial finished")
    sd.close()
    assert len(api.requests) == turns  # one session: the budget stopped the others from starting
    for req in api.requests:
        body, headers = req["body"], req["headers"]
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert headers["authorization"] == "Bearer sk-test-not-a-real-key" and "anthropic-version" in headers
        names = {t["name"] for t in body["tools"]}
        assert {"submission_submit_trial", "blackboard_get_lineage_view", "snapshot_rebase_to"} <= names
        assert "evaluator_evaluate" not in names  # specialists get no back door around the lineage
    first = api.requests[0]["body"]
    assert "alpha" in first["system"][0]["text"] and "X specialist" in first["system"][0]["text"]


async def test_a_session_cancelled_after_the_grace_still_counts_what_it_spent(tmp_path: Path, monkeypatch):
    """Two replies answered, then the model never answers the third request; a stop cancels the
    session after the grace, and its record keeps the two replies' tokens and their cost."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    state = tmp_path / "search"
    ensure_search(state, QUICK, roster="roles", lineage=True)
    calls = lambda body: ([tool_use("blackboard_get_leaderboard", {}, n=len(body["messages"]))], "tool_use")  # noqa: E731
    with FakeMessagesAPI(calls, hang_after=2) as api:
        choice = AgentChoice.parse("anthropic:claude-opus-4-8", base_url=api.base_url,
                                   session=SessionConfig(max_tool_turns=12, time_limit_s=300))
        session, progress = await run_until_hung_then_stop(state, api, choice, "alpha", grace_s=1, answered=2)
    assert (session.stop_reason, session.tokens_in, session.tool_calls) == ("cancelled", 200, 2)
    assert session.cost_usd > 0 and progress.spend_usd == pytest.approx(session.cost_usd)
    saved = json.loads(Path(session.transcript).read_text())
    assert saved["result"]["stop_reason"] == "cancelled" and saved["result"]["usage"]["tokens_in"] == 200
