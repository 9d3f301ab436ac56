"""The host side of agent CLI sessions, without an agent: process trees, the environment
allow-list, the per-session loopback server, the `--agent` spellings."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from client._cli_host import AgentProcess, agent_env, loopback_suite, private_dir
from client._proctree import alive, kill_tree, session_members, start_ticks, tree
from client.run import AgentChoice, session_factory
from servers.auth import load_tokens


async def _wait_for(predicate, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_killed_agent_leaves_no_process_behind_not_even_one_that_left_its_session(tmp_path: Path) -> None:
    script = "sleep 60 & setsid sleep 61 & exec sleep 62"  # a child, an escapee into its own session, the leader
    proc = AgentProcess(["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "agent.log")
    await proc.start()
    await _wait_for(lambda: len(tree(proc.pid)) == 4)  # under the watchdog
    pids = tree(proc.pid)
    escaped = pids - session_members(proc.pid)
    assert len(escaped) == 1  # the session sweep alone would miss it; the tree read first does not
    assert proc.kill(timeout_s=3) == []
    assert [pid for pid in pids if alive(pid)] == []
    await asyncio.wait_for(proc.proc.wait(), 2)


AGENT = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from client._cli_host import AgentProcess

async def main():
    proc = AgentProcess(["sh", "-c", "sleep 60 & setsid sleep 61 & exec sleep 62"], {{"PATH": "/usr/bin:/bin"}},
                        Path({cwd!r}), Path({cwd!r}).parent / "agent.log")
    await proc.start()
    print(proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_an_agent_dies_with_its_supervisor_even_one_killed_outright(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "mcp.json").write_text("the specialist's token")
    code = AGENT.format(repo=str(Path(__file__).resolve().parents[2]), cwd=str(private))
    supervisor = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        root = int(supervisor.stdout.readline())
        deadline = time.monotonic() + 3
        while len(tree(root)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = tree(root)
        assert len(pids) == 4, pids  # the watchdog, the shell's sleep, its child, its escapee
        supervisor.kill()  # SIGKILL: no finally, no atexit
        supervisor.wait(2)
        deadline = time.monotonic() + 3
        while [p for p in pids if alive(p)] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p for p in pids if alive(p)] == []
        assert not private.exists()  # nor does its private dir, with the token in it
    finally:
        supervisor.kill()


def test_a_pid_that_now_names_another_process_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)  # stands for a stranger that got the pid
    try:
        assert kill_tree(other.pid, 1.0, started=start_ticks(other.pid) - 1) == []
        assert alive(other.pid)
        assert kill_tree(other.pid, 1.0, started=start_ticks(other.pid)) == []
        assert other.wait(2) == -9
    finally:
        other.kill()


def test_the_agent_environment_is_an_allow_list(tmp_path: Path) -> None:
    source = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": "sk-1", "HOME": "/root",
              "AWS_SECRET_ACCESS_KEY": "aws", "AUTORESEARCH_TOKEN_ARCH": "arch-token", "DATABASE_URL": "pg://x"}
    env = agent_env(tmp_path, source, ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"), {"DISABLE_TELEMETRY": "1"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": "sk-1", "DISABLE_TELEMETRY": "1",
                   "HOME": str(tmp_path), "TMPDIR": str(tmp_path / "tmp")}


def test_private_dirs_are_owner_only_and_removed(tmp_path: Path) -> None:
    with private_dir(tmp_path / "agents", "claude-code-opt") as home:
        assert home.parent == tmp_path / "agents" and home.stat().st_mode & 0o777 == 0o700
        (home / "secret").write_text("x")
    assert not home.exists()


def test_agent_spellings() -> None:
    cc = AgentChoice.parse("claude-code", web_search=True)
    assert (cc.kind, cc.model, cc.cli.web_search, cc.cli.transport) == ("claude-code", "", True, "http")
    codex = AgentChoice.parse("codex:gpt-5.3-codex", base_url="http://127.0.0.1:11434/v1")
    assert (codex.kind, codex.model, codex.cli.base_url) == ("codex", "gpt-5.3-codex", "http://127.0.0.1:11434/v1")
    with pytest.raises(ValueError, match="claude-code"):
        AgentChoice.parse("cursor")


def test_a_spend_cap_refuses_an_agent_model_it_cannot_price(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from client import prices
    from client.cli import app

    monkeypatch.setattr(prices, "PRICES", dict(prices.PRICES))  # what --price registers stays in this test
    base = ["run", "--task", "digits-speedrun", "--state", str(tmp_path / "s"), "--budget-usd", "5"]
    said = lambda got: " ".join(got.output.split())  # noqa: E731  (the console wraps long lines)
    got = CliRunner().invoke(app, [*base, "--agent", "codex:gpt-5.3-codex"])  # OpenAI's prices are not in the table
    assert got.exit_code == 2 and "no price for the model 'gpt-5.3-codex'" in said(got), got.output
    assert "--price MODEL=IN,OUT" in said(got) and not (tmp_path / "s").exists()  # refused before anything ran
    got = CliRunner().invoke(app, [*base, "--agent", "codex"])  # Codex's default model: unnamed, unpriced
    assert got.exit_code == 2 and "--agent codex:MODEL" in said(got), got.output
    got = CliRunner().invoke(app, [*base, "--agent", "codex:gpt-5.3-codex", "--price", "gpt-5.3-codex=1.25"])
    assert got.exit_code == 2 and "use MODEL=IN,OUT" in said(got), got.output
    assert not prices.is_priced("gpt-5.3-codex")


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_session_server_answers_only_its_specialist(tmp_path: Path) -> None:
    from servers.app.runtime import SearchRuntime
    from servers.app.init import Baseline, init_search

    init_search("tests.client.quicktask.task:TASK", tmp_path / "s", roster="roles", lineage=True,
                baseline=Baseline(score=1.0))
    tokens = load_tokens(tmp_path / "s")
    rt = SearchRuntime.open(tmp_path / "s", workers=0)
    try:
        assert session_factory(AgentChoice.parse("claude-code"), rt).model == "claude-code"  # type: ignore[attr-defined]
        mine, other = list(tokens)[:2]
        async with loopback_suite(rt, mine, tokens[mine]) as url, httpx.AsyncClient() as http:
            assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            head = {"accept": "application/json, text/event-stream"}
            auth = {"other": {"authorization": f"Bearer {tokens[other]}"}, "none": {},
                    "mine": {"authorization": f"Bearer {tokens[mine]}"}}
            codes = {who: (await http.post(url, json=ping, headers={**head, **h})).status_code for who, h in auth.items()}
            assert (codes["other"], codes["none"]) == (401, 401) and codes["mine"] != 401, codes
        with pytest.raises(httpx.ConnectError):  # served for the session only
            await httpx.AsyncClient().post(url, json=ping)
    finally:
        rt.close()
