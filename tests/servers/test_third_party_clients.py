"""Real third-party clients: the MCP Inspector CLI (stdio and HTTP) and the Claude Code CLI.

The Inspector runs through `npx -y @modelcontextprotocol/inspector@2.12.0 --cli` with HOME
set to a temp dir (it writes ~/.mcp-inspector); npm's cache stays the user's, so the package
downloads once. Skipped with the reason when node/npx or the npm registry is unavailable.
Claude Code is the binary bundled in the claude-agent-sdk wheel; skipped where it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from servers.auth import load_tokens
from tests.servers.conftest import CLI, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NPM_CACHE = str(Path.home() / ".npm")


def inspector_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "npm_config_cache": os.environ.get("npm_config_cache", NPM_CACHE),
        "npm_config_update_notifier": "false",
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if not shutil.which("npx"):
        pytest.skip("npx (node) is not installed")
    home = tmp_path_factory.mktemp("home")
    try:
        probe = subprocess.run(
            ["npx", "-y", INSPECTOR, "--cli", "--help"], env=inspector_env(home), capture_output=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the MCP Inspector could not be fetched from the npm registry in 300 s")
    if probe.returncode != 0:
        pytest.skip(f"the MCP Inspector is unavailable: {probe.stderr.decode()[-300:]}")
    return ["npx", "-y", INSPECTOR, "--cli", "--format", "json", "-q"]


def run(cmd: list[str], home: Path) -> tuple[int, dict]:
    proc = subprocess.run(cmd, env=inspector_env(home), capture_output=True, timeout=120, cwd=home)
    out = proc.stdout.decode().strip()
    return proc.returncode, json.loads(out) if out else {"stderr": proc.stderr.decode()[-2000:]}


def structured(result: dict) -> dict:
    return result["result"]["structuredContent"]


def session(inspector: list[str], home: Path, before: list[str], after: list[str]) -> list[tuple[int, dict]]:
    """List tools, then read the view, edit, submit and wait, each as one Inspector call."""
    calls = [
        ["--method", "tools/list"],
        ["--method", "tools/call", "--tool-name", "blackboard_get_lineage_view", "--tool-arg", "max_chars=4000"],
        [
            "--method",
            "tools/call",
            "--tool-name",
            "submission_edit_workspace_file",
            "--tool-args-json",
            json.dumps({"path": "train.py", "old_text": "EPOCHS = 30", "new_text": "EPOCHS = 3"}),
        ],
        [
            "--method",
            "tools/call",
            "--tool-name",
            "submission_submit_trial",
            "--tool-args-json",
            json.dumps({"hypothesis": "Three epochs clear the gate faster.", "expected_delta": -1.5}),
        ],
        [
            "--method",
            "tools/call",
            "--tool-name",
            "submission_wait_trial",
            "--tool-args-json",
            json.dumps({"exp_id": 1, "timeout_s": 2}),
        ],
    ]
    return [run([*inspector, *before, *c, *after], home) for c in calls]


def check_session(results: list[tuple[int, dict]], specialist: str) -> None:
    assert all(rc == 0 for rc, _ in results), results
    names = {t["name"] for t in results[0][1]["result"]["tools"]}
    assert {
        "blackboard_get_lineage_view",
        "submission_edit_workspace_file",
        "submission_submit_trial",
        "submission_wait_trial",
    } <= names
    assert f"you are **{specialist}**" in results[1][1]["result"]["content"][0]["text"]
    assert structured(results[2][1])["replacements"] == 1
    submitted = structured(results[3][1])
    assert (submitted["exp_id"], submitted["status"], submitted["parent_exp"]) == (1, "queued", 0)
    waited = structured(results[4][1])
    assert (waited["exp_id"], waited["specialist"], waited["status"]) == (1, specialist, "queued")


@pytest.mark.timeout(600)
def test_inspector_over_stdio(inspector: list[str], search: Path, tmp_path: Path) -> None:
    before = ["-e", "PYTHONUNBUFFERED=1"]
    after = ["--", *CLI, "serve", "--state", str(search), "--specialist", "opt", "--no-workers"]
    check_session(session(inspector, tmp_path, before, after), "opt")
    rc, err = run(
        [
            *inspector,
            *before,
            "--method",
            "tools/call",
            "--tool-name",
            "submission_read_workspace_file",
            "--tool-arg",
            "path=../arch/train.py",
            *after,
        ],
        tmp_path,
    )
    assert rc == 5  # the Inspector's exit code for a tool result with isError


@pytest.mark.timeout(600)
def test_inspector_over_http(inspector: list[str], search: Path, tmp_path: Path, http_server) -> None:  # type: ignore[no-untyped-def]
    url = http_server(search, "--no-workers")
    token = load_tokens(search)["loss"]
    before = [url, "--transport", "http", "--header", f"Authorization: Bearer {token}"]
    check_session(session(inspector, tmp_path, before, []), "loss")
    rc, out = run([*inspector, url, "--transport", "http", "--method", "tools/list"], tmp_path)
    assert rc == 3  # auth_required: no bearer token


def claude_binary() -> Path | None:
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return path if path.exists() else None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_claude_code_reports_the_server_connected(search: Path, tmp_path: Path, http_server, transport: str) -> None:  # type: ignore[no-untyped-def]
    claude = claude_binary()
    if claude is None:
        pytest.skip("claude-agent-sdk (with its bundled Claude Code CLI) is not installed")
    port_args: list[str] = []
    if transport == "http":
        url = http_server(search, "--no-workers")
        port_args = ["--port", url.rsplit(":", 1)[1].split("/")[0]]
    args = ["mcp-config", "--state", str(search), "--specialist", "opt", "--client", "claude-code"]
    out = subprocess.run([*CLI, *args, "--transport", transport, *port_args], cwd=REPO, capture_output=True,
                         check=True, timeout=60)
    config = out.stdout.decode()
    entry = json.loads(config)["mcpServers"]["autoresearch"]
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "MCP_TIMEOUT": "60000",
    }
    env.pop("ANTHROPIC_API_KEY", None)
    subprocess.run(
        [str(claude), "mcp", "add-json", "-s", "local", "autoresearch", json.dumps(entry)],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    got = subprocess.run(
        [str(claude), "mcp", "get", "autoresearch"], cwd=project, env=env, capture_output=True, timeout=180
    )
    text = got.stdout.decode() + got.stderr.decode()
    assert "Connected" in text, text
