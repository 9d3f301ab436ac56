"""A real `autoresearch serve --transport http` on loopback: tokens decide who is calling."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from lineage.state import StateDir
from servers.auth import load_tokens

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


def test_tokens_file_is_private(search: Path) -> None:
    tokens = load_tokens(search)
    assert sorted(tokens) == ["arch", "aug", "loss", "opt", "reg"] and len(set(tokens.values())) == 5
    assert (search / "tokens.json").stat().st_mode & 0o777 == 0o600


async def test_http_refuses_missing_or_wrong_tokens(http_server, search: Path) -> None:  # type: ignore[no-untyped-def]
    url = http_server(search, "--no-workers")
    async with httpx2.AsyncClient() as h:
        raw = await h.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert raw.status_code == 401 and raw.headers["www-authenticate"].startswith("Bearer")
    for auth in (None, "not-a-token"):
        with pytest.raises(MCPError):
            async with Client(url, auth=auth) as c:
                await c.list_tools()


async def test_wrong_token_401_says_where_the_right_ones_are(http_server, search: Path) -> None:  # type: ignore[no-untyped-def]
    url = http_server(search, "--no-workers")
    async with httpx2.AsyncClient() as h:
        raw = await h.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": "application/json, text/event-stream", "authorization": "Bearer not-a-token"},
        )
    said = raw.json()["error_description"]
    assert raw.status_code == 401 and raw.json()["error"] == "invalid_token"
    assert "bearer token is wrong" in said and f"autoresearch tokens --state {search}" in said
    assert "re-register" not in said and "bearer token is wrong" in raw.headers["www-authenticate"]


async def test_serve_gives_the_specialist_servers_unless_the_evaluator_is_asked_for(  # type: ignore[no-untyped-def]
    http_server, search: Path,
) -> None:
    token = load_tokens(search)["opt"]
    async with Client(http_server(search, "--no-workers"), auth=token) as c:
        default = {t.name.split("_")[0] for t in await c.list_tools()}
    assert default == {"blackboard", "snapshot", "submission"}


async def test_token_decides_the_specialist(http_server, search: Path) -> None:  # type: ignore[no-untyped-def]
    url = http_server(search, "--no-workers", "--server", "all")
    tokens = load_tokens(search)
    async with Client(url, auth=tokens["opt"]) as opt, Client(url, auth=tokens["reg"]) as reg:
        names = {t.name for t in await opt.list_tools()}
        assert {"blackboard_get_lineage_view", "submission_submit_trial", "evaluator_evaluate"} <= names
        await call(opt, "submission_write_workspace_file", {"path": "train.py", "content": "print('from opt')\n"})
        mine = (await call(reg, "submission_read_workspace_file", {"path": "train.py"})).structured_content
        sub = (
            await call(opt, "submission_submit_trial", {"hypothesis": "opt's idea.", "expected_delta": -0.1})
        ).structured_content
        sub2 = (
            await call(reg, "submission_submit_trial", {"hypothesis": "reg's idea.", "expected_delta": 0.2})
        ).structured_content
        view = (await call(reg, "blackboard_get_lineage_view")).content[0].text
        brief = (await reg.get_prompt("blackboard_specialist_brief")).messages[0].content.text
    assert "from opt" not in mine["content"]
    assert "you are **reg**" in view and "# Your role: Regularisation (`reg`)" in brief
    state = StateDir.open(search)
    try:
        rows = {t.exp_id: t.specialist for t in state.store.list_trials(state.search_id, include_baseline=False)}
    finally:
        state.close()
    assert rows == {sub["exp_id"]: "opt", sub2["exp_id"]: "reg"}


async def test_specialist_flag_is_refused_over_http(search: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    result = CliRunner().invoke(app, ["serve", "--state", str(search), "--transport", "http", "--specialist", "opt"])
    assert result.exit_code == 2 and "token decides" in result.output
    result = CliRunner().invoke(app, ["serve", "--state", str(search)])
    assert result.exit_code == 2 and "--specialist NAME" in result.output
    assert json.loads((search / "search.json").read_text())["search_id"] == "state"
