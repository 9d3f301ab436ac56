"""The submission server over an in-memory client: workspace tools, submit and wait."""

from __future__ import annotations

import time

import pytest

from lineage.models import Outcome, TrialStatus
from lineage.state import StateLayout
from servers.app.runtime import SearchRuntime


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


def test_init_writes_each_part_where_the_state_layout_says(rt: SearchRuntime) -> None:
    layout = StateLayout(rt.state.path)
    assert layout.search_json.is_file() and layout.lineage_db.is_file() and layout.snapshots.is_dir()
    assert layout.tokens.is_file() and rt.layout == layout
    assert all((layout.workspace(name) / "train.py").is_file() for name in rt.roster)


async def test_list_read_edit_diff_roundtrip(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        listing = (await call(c, "submission_list_workspace")).structured_content
        assert listing["parent_exp"] == 0 and [f["path"] for f in listing["files"]] == ["train.py"]
        head = (await call(c, "submission_read_workspace_file", {"path": "train.py", "limit": 40})).structured_content
        assert "EPOCHS = 30" in head["content"] and head["next_offset"] == 41
        edit = await call(
            c,
            "submission_edit_workspace_file",
            {"path": "train.py", "old_text": "EPOCHS = 30", "new_text": "EPOCHS = 3"},
        )
        assert not edit.is_error and edit.structured_content["replacements"] == 1
        diff = (await call(c, "submission_workspace_diff")).structured_content
        assert diff["files_changed"] == ["train.py"] and "+EPOCHS = 3  # tunable" in diff["diff"]


async def test_edit_errors_are_actionable(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        absent = await call(
            c, "submission_edit_workspace_file", {"path": "train.py", "old_text": "EPOCHS = 99", "new_text": "x"}
        )
        assert absent.is_error and "not found in train.py" in absent.content[0].text
        ambiguous = await call(
            c, "submission_edit_workspace_file", {"path": "train.py", "old_text": "import", "new_text": "import "}
        )
        assert (
            ambiguous.is_error and "occurs" in ambiguous.content[0].text and "replace_all" in ambiguous.content[0].text
        )
        escape = await call(c, "submission_read_workspace_file", {"path": "../opt.json"})
        assert escape.is_error and "'..' is not allowed" in escape.content[0].text
        absolute = await call(c, "submission_write_workspace_file", {"path": "/tmp/x.py", "content": "x"})
        assert absolute.is_error and "absolute paths are not allowed" in absolute.content[0].text
        other = await call(c, "submission_write_workspace_file", {"path": "notes.md", "content": "x"})
        assert other.is_error and "editable paths (train.py)" in other.content[0].text


async def test_workspaces_are_private(connect, rt: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as opt, connect("arch") as arch:
        await call(opt, "submission_write_workspace_file", {"path": "train.py", "content": "print('opt')\n"})
        theirs = (await call(arch, "submission_read_workspace_file", {"path": "train.py"})).structured_content
        assert "print('opt')" not in theirs["content"]
        sneaky = await call(arch, "submission_read_workspace_file", {"path": "../opt/train.py"})
        assert sneaky.is_error
    assert (rt.layout.workspace("opt") / "train.py").read_text() == "print('opt')\n"


async def test_syntax_check_and_preflight(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        assert (await call(c, "submission_syntax_check")).structured_content == {"ok": True, "errors": []}
        await call(
            c,
            "submission_edit_workspace_file",
            {"path": "train.py", "old_text": "EPOCHS = 30", "new_text": "EPOCHS = (30"},
        )
        syntax = (await call(c, "submission_syntax_check")).structured_content
        assert not syntax["ok"] and syntax["errors"][0].startswith("train.py:")
        pre = (await call(c, "submission_preflight")).structured_content
        assert not pre["ok"] and pre["status"] == "preflight_crash"


async def test_submit_queues_fast_with_parent_and_position(connect, rt: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        t0 = time.monotonic()
        first = (
            await call(
                c, "submission_submit_trial", {"hypothesis": "Fewer epochs train faster.", "expected_delta": -0.5}
            )
        ).structured_content
        second = (
            await call(c, "submission_submit_trial", {"hypothesis": "Again.", "expected_delta": -0.1, "notes": "dup"})
        ).structured_content
        assert time.monotonic() - t0 < 3
    assert (first["exp_id"], first["status"], first["parent_exp"], first["queue_position"]) == (1, "queued", 0, 0)
    assert second["queue_position"] == 1 and "wait_trial" in second["message"]
    row = rt.store.get_trial(rt.search_id, 1)
    assert (row.specialist, row.expected_delta, row.parent_exp, row.snapshot) == ("opt", -0.5, 0, first["snapshot"])
    assert [e.kind for e in rt.store.list_events(rt.search_id)][-2:] == ["submit", "submit"]


async def test_syntax_error_submission_is_recorded_not_lost(connect, rt: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("aug") as c:
        await call(c, "submission_write_workspace_file", {"path": "train.py", "content": "def broken(:\n"})
        res = (
            await call(c, "submission_submit_trial", {"hypothesis": "Broken.", "expected_delta": 0})
        ).structured_content
    assert res["status"] == "preflight_crash" and res["queue_position"] is None
    row = rt.store.get_trial(rt.search_id, res["exp_id"])
    assert row.status == TrialStatus.PREFLIGHT_CRASH and "train.py:1" in row.failure and row.specialist == "aug"


@pytest.mark.parametrize(
    "args,match",
    [
        ({"hypothesis": "  ", "expected_delta": 1}, "hypothesis is empty"),
        ({"hypothesis": "h" * 2001, "expected_delta": 1}, "2000"),
        ({"hypothesis": "ok", "expected_delta": "NaN"}, "finite"),
        ({"hypothesis": "ok", "expected_delta": "inf"}, "finite"),
        ({"hypothesis": "ok", "expected_delta": 1, "notes": "n" * 4001}, "4000"),
    ],
)
async def test_submit_validates_fields(connect, rt: SearchRuntime, args: dict, match: str) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        res = await call(c, "submission_submit_trial", args)
    assert res.is_error and match in res.content[0].text
    assert rt.store.count_trials(rt.search_id) == {"baseline": 1}


async def test_wait_trial_returns_current_state_within_timeout(connect, rt: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    progress: list[tuple[float, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, message))

    async with connect("opt") as c:
        await call(c, "submission_submit_trial", {"hypothesis": "h", "expected_delta": 0})
        t0 = time.monotonic()
        res = await c.call_tool("submission_wait_trial", {"exp_id": 1, "timeout_s": 1.3}, progress_handler=on_progress)
        assert 1.2 < time.monotonic() - t0 < 3
    info = res.structured_content
    assert (info["status"], info["finished"], info["queue_position"]) == ("queued", False, 0)
    assert progress and progress[0][1] == "exp 1: queued"


async def test_wait_trial_returns_the_finished_row(connect, rt: SearchRuntime) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        await call(c, "submission_submit_trial", {"hypothesis": "h", "expected_delta": -0.2})
        assert rt.store.claim_trial(rt.search_id, "test-worker") is not None
        rt.store.finish_trial(rt.search_id, 1, Outcome(status="valid", score=1.5, timings={"train": 1.5}))
        t0 = time.monotonic()
        info = (await call(c, "submission_wait_trial", {"exp_id": 1, "timeout_s": 30})).structured_content
        assert time.monotonic() - t0 < 1
    assert (info["status"], info["score"], info["delta"], info["margin"]) == ("keep", 1.5, -0.5, pytest.approx(0.1))
    assert info["timings"] == {"train": 1.5} and "improved" in info["decision"]


async def test_tools_need_an_identity(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect(None) as c:
        res = await call(c, "submission_list_workspace")
    assert res.is_error and "--specialist" in res.content[0].text
