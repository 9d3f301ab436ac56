"""Text a client reads names tools it can call; numbers sent for text are text (issue 8, item 12).

Inside the suite every tool is `<server>_<tool>`: a description, an instruction or an error
that says "call list_workspace" names nothing callable there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastmcp import Client

from servers.evaluator import build_evaluator
from servers.names import TOOLS, tool_names
from servers.app.runtime import SearchRuntime
from servers.suite import SERVERS, build_suite
from tests.servers.conftest import standalone_jobs

FIXED = {t for names in TOOLS.values() for t in names}
ONE_WORD = "|".join(t for t in FIXED if "_" not in t)


def uncallable(text: str, names: dict[str, str]) -> list[str]:
    """Tool names in `text` that are fixed names but not callable under `names`."""
    callable_ = set(names.values())
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    bad = {w for w in words if w in FIXED and "_" in w and w not in callable_}
    # one-word tools (evaluate, preflight, calibrate) read as prose; flag them where they name a tool
    bad |= {m for m in re.findall(rf"(?:`|\bcall |\bwith )({ONE_WORD})\b|\b({ONE_WORD})\(", text)
            for m in m if m and m not in callable_}
    return sorted(bad)


def descriptions(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        return [v for k, v in schema.items() if k == "description" and isinstance(v, str)] + [
            d for k, v in schema.items() for d in descriptions(v) if k != "description" or not isinstance(v, str)]
    if isinstance(schema, list):
        return [d for item in schema for d in descriptions(item)]
    return []


async def listed_texts(client: Client) -> list[str]:
    texts = [client.instructions or ""]
    for tool in await client.list_tools():
        texts += [tool.description or "", *descriptions(tool.input_schema), *descriptions(tool.output_schema)]
    return texts


def test_the_checker_flags_bare_names() -> None:
    mounted = tool_names(mounted=True)
    assert uncallable("call list_workspace to see the files", mounted) == ["list_workspace"]
    assert uncallable("call submission_list_workspace; poll it with `get_job`", mounted) == ["get_job"]
    assert uncallable("the task's preflight runs", mounted) == []


async def test_suite_descriptions_name_callable_tools(rt: SearchRuntime) -> None:
    names = tool_names(mounted=True)
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        texts = await listed_texts(c)
    assert [bad for t in texts if (bad := uncallable(t, names))] == []
    assert any("submission_wait_trial" in t for t in texts)


async def test_single_server_and_standalone_evaluator_use_bare_names(rt: SearchRuntime, tmp_path: Path) -> None:
    from servers.suite import build_server

    bare = tool_names(mounted=False)
    async with Client(build_server("submission", rt, "opt")) as c:
        texts = await listed_texts(c)
    with standalone_jobs(tmp_path / "ev") as service:
        async with Client(build_evaluator(service)) as c:
            texts += await listed_texts(c)
            err = await c.call_tool("get_job", {"job_id": "nope", "timeout_s": 0}, raise_on_error=False)
    assert [bad for t in texts if (bad := uncallable(t, bare))] == []
    assert "list_jobs shows your jobs" in err.content[0].text


async def errors_and_messages(c: Client) -> dict[str, str]:
    async def text(name: str, args: dict[str, Any]) -> str:
        res = await c.call_tool(name, args, raise_on_error=False)
        return res.content[0].text

    return {
        "read": await text("submission_read_workspace_file", {"path": "nope.py"}),
        "edit-missing": await text("submission_edit_workspace_file",
                                   {"path": "train.py", "old_text": "no such text here", "new_text": "x"}),
        "edit-new": await text("submission_edit_workspace_file", {"path": "new.py", "old_text": "a", "new_text": "b"}),
        "rebase": await text("snapshot_rebase_to", {"exp_id": 99}),
        "knowledge": await text("blackboard_get_knowledge", {}),
        "job": await text("evaluator_get_job", {"job_id": "nope", "timeout_s": 0}),
        "submit": await text("submission_submit_trial", {"hypothesis": "names.", "expected_delta": -0.1}),
    }


async def test_suite_errors_and_messages_name_callable_tools(rt: SearchRuntime) -> None:
    names = tool_names(mounted=True)
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        texts = await errors_and_messages(c)
    assert {k: bad for k, t in texts.items() if (bad := uncallable(t, names))} == {}
    assert "submission_list_workspace" in texts["read"] and "evaluator_list_jobs" in texts["job"]
    assert "submission_wait_trial" in texts["submit"] and "blackboard_list_trials" in texts["rebase"]


async def test_prompts_name_callable_tools(rt: SearchRuntime) -> None:
    names = tool_names(mounted=True)
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
        start = (await c.get_prompt("blackboard_session_start")).messages[0].content.text
    assert uncallable(brief, names) == [] and uncallable(start, names) == []


def string_params(schema: dict[str, Any]) -> list[str]:
    out = []
    for name, prop in schema.get("properties", {}).items():
        subs = prop.get("anyOf", [prop])
        if any(s.get("type") == "string" and "enum" not in s for s in subs):
            out.append(name)
        elif any(s.get("type") == "object" and s.get("additionalProperties", {}).get("type") == "string"
                 for s in subs):
            out.append(name)
    return out


FILL = {"string": "train.py", "number": 0.0, "integer": 0, "boolean": False}


async def test_numbers_sent_for_text_are_accepted_as_text(rt: SearchRuntime) -> None:
    """A CLI client that turns `30` into an integer still gets its text argument through."""
    refused = []
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as c:
        for tool in await c.list_tools():
            schema = tool.input_schema
            for param in string_params(schema):
                prop = schema["properties"][param]
                value: Any = {"x.py": 30} if any(s.get("type") == "object" for s in prop.get("anyOf", [prop])) else 30
                args = {r: FILL[schema["properties"][r].get("type", "string")] for r in schema.get("required", [])}
                if tool.name.startswith("evaluator_") and param != "task":
                    args["task"] = "no-such-task"  # refused before any job is queued
                args[param] = value
                res = await c.call_tool(tool.name, args, raise_on_error=False)
                if res.is_error and "valid string" in res.content[0].text:
                    refused.append(f"{tool.name}.{param}")
    assert refused == []
