"""The suite's listing: fixed tool names, annotations, documented parameters, bounded schemas."""

from __future__ import annotations

import json

from fastmcp import Client
from inline_snapshot import snapshot

from servers._edge import tool_names
from servers.app.runtime import SearchRuntime
from servers.suite import SERVERS, build_server, build_suite


async def test_suite_lists_the_fixed_tool_names(rt: SearchRuntime) -> None:
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        tools = await c.list_tools()
        resources = [str(r.uri) for r in await c.list_resources()]
    assert [t.name for t in tools] == snapshot(
        [
            "blackboard_get_lineage_view",
            "blackboard_get_leaderboard",
            "blackboard_get_trial",
            "blackboard_list_trials",
            "blackboard_get_tree",
            "blackboard_get_knowledge",
            "snapshot_list_snapshot_files",
            "snapshot_read_snapshot",
            "snapshot_diff_snapshots",
            "snapshot_rebase_to",
            "submission_list_workspace",
            "submission_read_workspace_file",
            "submission_edit_workspace_file",
            "submission_write_workspace_file",
            "submission_workspace_diff",
            "submission_syntax_check",
            "submission_preflight",
            "submission_submit_trial",
            "submission_wait_trial",
            "evaluator_evaluate",
            "evaluator_get_job",
            "evaluator_cancel_job",
            "evaluator_list_jobs",
            "evaluator_calibrate",
        ]
    )
    assert {t.name for t in tools} == set(tool_names(mounted=True).values())
    assert resources == ["lineage://blackboard/leaderboard", "lineage://blackboard/knowledge"]


async def test_every_tool_is_documented_and_annotated(rt: SearchRuntime) -> None:
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        tools = await c.list_tools()
    read_only = {t.name for t in tools if t.annotations and t.annotations.read_only_hint}
    assert read_only == snapshot(
        {
            "blackboard_get_lineage_view",
            "blackboard_get_leaderboard",
            "blackboard_get_trial",
            "blackboard_list_trials",
            "blackboard_get_tree",
            "blackboard_get_knowledge",
            "snapshot_list_snapshot_files",
            "snapshot_read_snapshot",
            "snapshot_diff_snapshots",
            "submission_list_workspace",
            "submission_read_workspace_file",
            "submission_workspace_diff",
            "submission_syntax_check",
            "submission_preflight",
            "submission_wait_trial",
            "evaluator_get_job",
            "evaluator_list_jobs",
        }
    )
    for t in tools:
        assert t.description and len(t.description) > 30, t.name
        assert "$ref" not in json.dumps(t.input_schema), t.name
        for name, prop in t.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{t.name}.{name}"
        assert "specialist" not in t.input_schema.get("properties", {}), t.name
        assert not any("workspace" in p or p == "workdir" for p in t.input_schema.get("properties", {})), t.name


async def test_a_server_alone_has_plain_names(rt: SearchRuntime) -> None:
    async with Client(build_server("submission", rt, "opt")) as c:
        names = [t.name for t in await c.list_tools()]
        res = await c.call_tool("list_workspace", {})
    assert names[0] == "list_workspace" and "submit_trial" in names and res.structured_content["parent_exp"] == 0
