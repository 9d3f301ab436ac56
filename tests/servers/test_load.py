"""Load: 32 HTTP clients (different specialists) x 200 calls of mixed reads, edits, submissions.

Workers are disabled here (`--no-workers`), so the check is that every call succeeds and every
submission is a queued row attributed to the right specialist; test_e2e.py evaluates trials.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from fastmcp import Client

from lineage.state import StateDir
from servers.auth import load_tokens
from tests.servers.conftest import make_search

CLIENTS, CALLS = 32, 200


def plan(i: int) -> tuple[str, dict]:
    """Call i of a client: a fixed cycle of 10 (one submission, two edits, seven reads)."""
    step = i % 10
    if step == 1:
        return "submission_edit_workspace_file", {
            "path": "train.py",
            "old_text": "EPOCHS = 30",
            "new_text": "EPOCHS = 29",
        }
    if step == 5:
        return "submission_edit_workspace_file", {
            "path": "train.py",
            "old_text": "EPOCHS = 29",
            "new_text": "EPOCHS = 30",
        }
    if step == 6:
        return "submission_submit_trial", {"hypothesis": f"load call {i}", "expected_delta": -0.01}
    reads = {
        0: ("submission_read_workspace_file", {"path": "train.py", "limit": 50}),
        2: ("blackboard_get_leaderboard", {}),
        3: ("blackboard_get_trial", {"exp_id": 0}),
        4: ("blackboard_list_trials", {"limit": 20}),
        7: ("submission_list_workspace", {}),
        8: ("submission_workspace_diff", {}),
        9: ("blackboard_get_lineage_view", {"max_chars": 6000}),
    }
    return reads[step]


async def one_client(url: str, token: str) -> tuple[list[str], list[int]]:
    errors, exp_ids = [], []
    async with Client(url, auth=token, timeout=120) as c:
        for i in range(CALLS):
            name, args = plan(i)
            res = await c.call_tool(name, args, raise_on_error=False)
            if res.is_error:
                errors.append(f"{name}: {res.content[0].text}")
            elif name == "submission_submit_trial":
                exp_ids.append(res.structured_content["exp_id"])
    return errors, exp_ids


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(900)
async def test_32_clients_200_calls_each(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = make_search(tmp_path / "load", roster="generic", agents=CLIENTS)
    url = http_server(state, "--no-workers")
    tokens = load_tokens(state)
    t0 = time.monotonic()
    results = await asyncio.gather(*(one_client(url, tokens[name]) for name in tokens))
    elapsed = time.monotonic() - t0
    errors = [e for errs, _ in results for e in errs]
    assert errors == []
    submitted = {exp: name for name, (_, ids) in zip(tokens, results, strict=True) for exp in ids}
    assert len(submitted) == CLIENTS * CALLS // 10
    store_state = StateDir.open(state)
    try:
        rows = store_state.store.list_trials(store_state.search_id, include_baseline=False)
    finally:
        store_state.close()
    assert {t.exp_id: t.specialist for t in rows} == submitted
    assert Counter(t.status.value for t in rows) == {"queued": len(submitted)}
    print(f"\n{CLIENTS * CALLS} calls in {elapsed:.1f} s ({CLIENTS * CALLS / elapsed:.0f} calls/s)")
