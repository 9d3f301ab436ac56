"""The blackboard and snapshot servers over an in-memory client (lineage on)."""

from __future__ import annotations

import pytest

from lineage.models import Outcome
from servers.app.runtime import SearchRuntime


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


def finish(rt: SearchRuntime, exp_id: int, score: float | None, status: str = "valid") -> None:
    assert rt.store.claim_trial(rt.search_id, "test-worker", exp_id=exp_id) is not None
    rt.store.finish_trial(
        rt.search_id, exp_id, Outcome(status=status, score=score, failure="" if status == "valid" else "Traceback: boom")
    )


async def submit(client, old: str, new: str, hypothesis: str) -> int:  # type: ignore[no-untyped-def]
    await call(client, "submission_edit_workspace_file", {"path": "train.py", "old_text": old, "new_text": new})
    res = await call(client, "submission_submit_trial", {"hypothesis": hypothesis, "expected_delta": -0.3})
    return res.structured_content["exp_id"]


@pytest.fixture
async def history(connect, rt: SearchRuntime) -> SearchRuntime:  # type: ignore[no-untyped-def]
    """exp 1 (opt) kept at 1.5; exp 2 (arch) crashed; exp 3 (opt, parent 1) queued."""
    async with connect("opt") as opt, connect("arch") as arch:
        assert await submit(opt, "EPOCHS = 30", "EPOCHS = 10", "Ten epochs are enough.") == 1
        finish(rt, 1, 1.5)
        assert await submit(arch, "HIDDEN = 256", "HIDDEN = 64", "A narrower MLP.") == 2
        finish(rt, 2, None, status="crash")
        await call(opt, "snapshot_rebase_to", {"exp_id": 1})
        assert await submit(opt, "LR = 0.002", "LR = 0.004", "Double the LR.") == 3
    return rt


async def test_lineage_view_and_leaderboard(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        view = (await call(c, "blackboard_get_lineage_view")).content[0].text
        board = (await call(c, "blackboard_get_leaderboard", {"limit": 5})).content[0].text
    assert "you are **opt**" in view and "Ten epochs are enough." in view and "Traceback: boom" in view
    assert "Current best: exp 001" in board and "A narrower MLP" not in board


async def test_get_and_list_trials(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("aug") as c:
        one = (await call(c, "blackboard_get_trial", {"exp_id": 1})).structured_content
        missing = await call(c, "blackboard_get_trial", {"exp_id": 99})
        page = (await call(c, "blackboard_list_trials", {"limit": 2})).structured_content
        crashes = (await call(c, "blackboard_list_trials", {"statuses": ["crash"]})).structured_content
        kids = (await call(c, "blackboard_list_trials", {"parent_exp": 1, "author": "opt"})).structured_content
        bad = await call(c, "blackboard_list_trials", {"statuses": ["bogus"]})
    assert (one["status"], one["score"], one["specialist"], one["hypothesis"]) == (
        "keep",
        1.5,
        "opt",
        "Ten epochs are enough.",
    )
    assert missing.is_error and "no exp 99" in missing.content[0].text or "no trial exp 99" in missing.content[0].text
    assert [t["exp_id"] for t in page["trials"]] == [3, 2] and page["next_offset"] == 2
    assert [t["exp_id"] for t in crashes["trials"]] == [2] and crashes["trials"][0]["note"] == "Traceback: boom"
    assert [t["exp_id"] for t in kids["trials"]] == [3]
    assert bad.is_error


async def test_tree_and_knowledge(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        tree = (await call(c, "blackboard_get_tree")).structured_content
        sub = (await call(c, "blackboard_get_tree", {"root_exp": 1})).structured_content
        paged = (await call(c, "blackboard_get_tree", {"limit": 2})).structured_content
        know = (await call(c, "blackboard_get_knowledge")).structured_content
        init = (await call(c, "blackboard_get_knowledge", {"name": "INIT.md", "limit": 100})).structured_content
        nope = await call(c, "blackboard_get_knowledge", {"name": "../secret"})
        res = await c.read_resource("lineage://blackboard/leaderboard")
    lines = tree["content"].splitlines()
    assert lines[0].startswith("exp_id\tparent_exp") and [ln.split("\t")[3] for ln in lines[1:]] == [
        "000",
        "000/001",
        "000/001/003",
        "000/002",
    ]
    assert [ln.split("\t")[0] for ln in sub["content"].splitlines()[1:]] == ["001", "003"]
    assert len(paged["content"].splitlines()) == 3 and paged["next_offset"] == 2
    assert know["name"] == "KNOWLEDGE.md" and "INIT.md" in know["content"]
    assert len(init["content"]) == 100 and init["next_offset"] == 100
    assert nope.is_error and "available: KNOWLEDGE.md, INIT.md" in nope.content[0].text
    assert "Current best: exp 001" in res[0].text


async def test_snapshot_read_list_diff(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("aug") as c:
        files = (await call(c, "snapshot_list_snapshot_files", {"exp_id": 3})).structured_content
        text = (
            await call(c, "snapshot_read_snapshot", {"exp_id": 1, "path": "train.py", "offset": 20, "limit": 5})
        ).structured_content
        diff = (await call(c, "snapshot_diff_snapshots", {"exp_id": 3})).structured_content
        vs0 = (await call(c, "snapshot_diff_snapshots", {"exp_id": 3, "base_exp": 0})).structured_content
        escape = await call(c, "snapshot_read_snapshot", {"exp_id": 1, "path": "../../lineage.db"})
        absent = await call(c, "snapshot_read_snapshot", {"exp_id": 1, "path": "nope.py"})
    assert [f["path"] for f in files["files"]] == ["train.py"]
    assert text["first_line"] == 20 and "EPOCHS = 10" in text["content"]
    assert (diff["exp_a"], diff["exp_b"]) == (1, 3) and "+LR = 0.004" in diff["diff"] and "+EPOCHS" not in diff["diff"]
    assert "+EPOCHS = 10" in vs0["diff"] and "+LR = 0.004" in vs0["diff"]
    assert escape.is_error and "'..' is not allowed" in escape.content[0].text
    assert absent.is_error and "not a file of snapshot" in absent.content[0].text


async def test_rebase_only_to_kept_trials(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("aug") as c:
        crashed = await call(c, "snapshot_rebase_to", {"exp_id": 2})
        queued = await call(c, "snapshot_rebase_to", {"exp_id": 3})
        ok = (await call(c, "snapshot_rebase_to", {"exp_id": 1})).structured_content
        listing = (await call(c, "submission_list_workspace")).structured_content
        exp = await submit(c, "BATCH_SIZE = 32", "BATCH_SIZE = 64", "Bigger batches.")
    assert crashed.is_error and "is crash; rebase only to a kept trial" in crashed.content[0].text
    assert queued.is_error
    assert ok["parent_exp"] == 1 and listing["parent_exp"] == 1
    assert history.store.get_trial(history.search_id, exp).parent_exp == 1


async def test_prompts_brief_and_session_start(connect, history: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        prompts = [p.name for p in await c.list_prompts()]
        brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
        start = (await c.get_prompt("blackboard_session_start")).messages[0].content.text
    assert prompts == ["blackboard_specialist_brief", "blackboard_session_start"]
    assert "# Your role: Optimizer and schedule (`opt`)" in brief and "submission_submit_trial" in brief
    assert "## INIT.md" in brief and "Reading the lineage view" in brief
    assert "It was last rebased to exp 001" in start and "Double the LR." in start
