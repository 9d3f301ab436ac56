"""`autoresearch init | tokens | mcp-config | serve-evaluator` through typer's CliRunner or a process."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from client.cli import app
from lineage.state import StateDir
from servers.auth import load_tokens
from tests.servers.conftest import CLI, REPO, TASK, free_port, stop, wait_port

runner = CliRunner()


def test_init_with_a_given_baseline_creates_everything(tmp_path: Path) -> None:
    state = tmp_path / "s"
    result = runner.invoke(
        app,
        [
            "init",
            "--task",
            TASK,
            "--state",
            str(state),
            "--roster",
            "generic",
            "--no-lineage",
            "--baseline-score",
            "2.5",
            "--margin-abs",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "roster generic (agent1, agent2, agent3, agent4, agent5), lineage off" in result.output
    opened = StateDir.open(state)
    try:
        search = opened.search
        base = opened.store.get_trial(opened.search_id, 0)
    finally:
        opened.close()
    assert (search.config.arm, search.config.lineage, search.config.margin.abs_delta) == ("generic", False, 0.1)
    assert (search.baseline_score, base.snapshot is not None) == (2.5, True)
    assert sorted(p.name for p in (state / "workspaces").iterdir() if p.is_dir()) == [f"agent{i}" for i in range(1, 6)]
    again = runner.invoke(app, ["init", "--task", TASK, "--state", str(state), "--baseline-score", "1"])
    assert again.exit_code == 2 and "already holds a search" in again.output
    unknown = runner.invoke(
        app, ["init", "--task", "no-such-task", "--state", str(tmp_path / "t"), "--baseline-score", "1"]
    )
    assert unknown.exit_code == 2 and "unknown task" in unknown.output


def test_tokens_lists_every_specialist(search: Path) -> None:
    result = runner.invoke(app, ["tokens", "--state", str(search), "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == load_tokens(search)
    plain = runner.invoke(app, ["tokens", "--state", str(search)])
    assert plain.output.splitlines()[0].split() == ["arch", load_tokens(search)["arch"]]
    missing = runner.invoke(app, ["tokens", "--state", str(search / "nope")])
    assert missing.exit_code == 2


def mcp_config(search: Path, *args: str) -> str:
    result = runner.invoke(app, ["mcp-config", "--state", str(search), "--specialist", "opt", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_mcp_config_claude_code_and_cursor(search: Path) -> None:
    stdio = json.loads(mcp_config(search, "--client", "claude-code"))["mcpServers"]["autoresearch"]
    assert stdio["type"] == "stdio" and Path(stdio["command"]).is_absolute()
    assert stdio["args"][stdio["args"].index("--state") + 1] == str(search.absolute())
    assert stdio["args"][stdio["args"].index("--specialist") + 1] == "opt"
    assert stdio["env"] == {"PYTHONUNBUFFERED": "1"}
    http = json.loads(mcp_config(search, "--client", "claude-code", "--transport", "http", "--port", "9123"))
    assert http["mcpServers"]["autoresearch"] == {
        "type": "http",
        "url": "http://127.0.0.1:9123/mcp",
        "headers": {"Authorization": f"Bearer {load_tokens(search)['opt']}"},
    }
    cursor = json.loads(mcp_config(search, "--client", "cursor", "--transport", "http"))["mcpServers"]["autoresearch"]
    assert set(cursor) == {"url", "headers"}
    desktop = json.loads(mcp_config(search, "--client", "claude-desktop"))["mcpServers"]["autoresearch"]
    assert set(desktop) == {"command", "args", "env"}
    refused = runner.invoke(
        app,
        [
            "mcp-config",
            "--state",
            str(search),
            "--specialist",
            "opt",
            "--client",
            "claude-desktop",
            "--transport",
            "http",
        ],
    )
    assert refused.exit_code == 2 and "stdio only" in refused.output
    stranger = runner.invoke(app, ["mcp-config", "--state", str(search), "--specialist", "eve", "--client", "cursor"])
    assert stranger.exit_code == 2 and "not in this search's roster" in stranger.output


def test_mcp_config_codex_is_valid_toml(search: Path) -> None:
    stdio = tomllib.loads(mcp_config(search, "--client", "codex"))["mcp_servers"]["autoresearch"]
    assert stdio["args"][0] == "serve" and stdio["env"] == {"PYTHONUNBUFFERED": "1"}
    text = mcp_config(search, "--client", "codex", "--transport", "http")
    http = tomllib.loads(text)["mcp_servers"]["autoresearch"]
    assert http == {
        "url": "http://127.0.0.1:8000/mcp",
        "bearer_token_env_var": "AUTORESEARCH_TOKEN_OPT",
        "tool_timeout_sec": 120,
    }
    assert f"export AUTORESEARCH_TOKEN_OPT={load_tokens(search)['opt']}" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_serve_evaluator_over_http_needs_its_token(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "err.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                *CLI,
                "serve-evaluator",
                "--task",
                TASK,
                "--transport",
                "http",
                "--port",
                str(port),
                "--work-dir",
                str(tmp_path / "ev"),
                "--token",
                "s3cret-token",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ},
        )
    try:
        wait_port(port, proc, log)
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, auth="s3cret-token") as c:
            names = sorted(t.name for t in await c.list_tools())
            jobs = await c.call_tool("list_jobs", {})
        with pytest.raises(MCPError):
            async with Client(url) as c:
                await c.list_tools()
    finally:
        stop(proc)
    assert names == ["calibrate", "cancel_job", "evaluate", "get_job", "list_jobs"]
    assert jobs.structured_content == {"result": []}
    assert "s3cret-token" not in log.read_text()  # a token the user gave is never printed


def start_evaluator(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp_path / f"err-{port}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve-evaluator", "--task", TASK, "--transport", "http", "--port", str(port),
             "--work-dir", str(tmp_path / "ev"), *args],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ},
        )
    wait_port(port, proc, log)
    return proc, f"http://127.0.0.1:{port}/mcp", log


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_serve_evaluator_gives_each_caller_a_token_and_jobs_of_its_own(tmp_path: Path) -> None:
    import httpx2

    (tmp_path / "tokens.json").write_text(json.dumps({"alice": "alice-token-1234", "bob": "bob-token-5678"}))
    proc, url, log = start_evaluator(tmp_path, "--tokens-file", str(tmp_path / "tokens.json"),
                                     "--token", "carol=carol-token-9012")
    slow = {"train.py": "import time\ntime.sleep(60)\n"}
    try:
        async with Client(url, auth="alice-token-1234") as alice, Client(url, auth="bob-token-5678") as bob, \
                Client(url, auth="carol-token-9012") as carol:
            job = (await alice.call_tool("evaluate", {"files": slow, "seeds": 1})).structured_content
            theirs = (await bob.call_tool("list_jobs", {})).structured_content
            steal = await bob.call_tool("cancel_job", {"job_id": job["job_id"]}, raise_on_error=False)
            peek = await carol.call_tool("get_job", {"job_id": job["job_id"], "timeout_s": 0}, raise_on_error=False)
            mine = (await alice.call_tool("list_jobs", {})).structured_content
            done = (await alice.call_tool("cancel_job", {"job_id": job["job_id"]})).structured_content
        async with httpx2.AsyncClient() as h:
            wrong = await h.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                 headers={"accept": "application/json, text/event-stream",
                                          "authorization": "Bearer nobody-token"})
    finally:
        stop(proc)
    assert theirs == {"result": []} and [j["job_id"] for j in mine["result"]] == [job["job_id"]]
    assert steal.is_error and "no job" in steal.content[0].text
    assert peek.is_error and "no job" in peek.content[0].text
    assert done["state"] == "cancelled"
    assert wrong.status_code == 401 and "bearer token is wrong" in wrong.json()["error_description"]
    printed = log.read_text()
    assert "callers: alice, bob, carol" in printed and "-token-" not in printed


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_serve_evaluator_prints_the_token_it_generated(tmp_path: Path) -> None:
    proc, url, log = start_evaluator(tmp_path)
    try:
        token = log.read_text().split("bearer token (caller 'client'): ")[1].split()[0]
        async with Client(url, auth=token) as c:
            listed = (await c.call_tool("list_jobs", {})).structured_content
    finally:
        stop(proc)
    assert listed == {"result": []}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_init_calibrates_with_the_evaluator(tmp_path: Path) -> None:
    state = tmp_path / "cal"
    result = subprocess.run(
        [*CLI, "init", "--task", TASK, "--state", str(state), "--calibration-seeds", "2"],
        cwd=REPO,
        capture_output=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    opened = StateDir.open(state)
    try:
        search, base = opened.search, opened.store.get_trial(opened.search_id, 0)
    finally:
        opened.close()
    assert search.baseline_n == 2 and search.baseline_score and search.baseline_score > 0
    assert base.metrics["runs"] == 2 and "calibrated baseline" in base.hypothesis


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_stdio_servers_speak_only_the_protocol_on_stdout(search: Path, tmp_path: Path) -> None:
    from fastmcp.client.transports import StdioTransport

    evaluator = StdioTransport(command=CLI[0], args=[*CLI[1:], "serve-evaluator", "--task", TASK, "--work-dir",
                                                     str(tmp_path / "ev")], cwd=str(REPO))
    suite = StdioTransport(command=CLI[0], args=[*CLI[1:], "serve", "--state", str(search), "--specialist", "reg",
                                                 "--no-workers"], env={"PYTHONUNBUFFERED": "1"}, cwd=str(REPO))
    async with Client(evaluator) as c:
        assert "evaluate" in {t.name for t in await c.list_tools()}
    async with Client(suite) as c:
        view = await c.call_tool("blackboard_get_lineage_view", {})
    assert "you are **reg**" in view.content[0].text
