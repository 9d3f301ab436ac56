"""The dashboard beside the MCP endpoint of a real `autoresearch serve --transport http`, and the
`dashboard` and `tokens` commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx2
import pytest
from fastmcp import Client
from typer.testing import CliRunner

from client.cli import app
from servers.auth import load_tokens, viewer_token
from tests.servers.conftest import CLI, REPO, free_port, make_search, stop, wait_port

runner = CliRunner()


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_serve_answers_the_dashboard_at_root_and_mcp_at_its_path(http_server, search: Path) -> None:  # type: ignore[no-untyped-def]
    mcp_url = http_server(search, "--no-workers")
    base = mcp_url.removesuffix("/mcp")
    viewer = viewer_token(search)
    async with httpx2.AsyncClient(base_url=base, follow_redirects=False, timeout=30) as h:
        closed = await h.get("/")
        opened = await h.get(f"/?token={viewer}")
        page = await h.get("/", cookies={k: v for k, v in opened.cookies.items()})
        api = await h.get("/api/s/state/summary", headers={"authorization": f"Bearer {load_tokens(search)['opt']}"})
        viewer_on_mcp = await h.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                     headers={"authorization": f"Bearer {viewer}",
                                              "accept": "application/json, text/event-stream"})
    assert closed.status_code == 401 and "needs a token" in closed.text
    assert opened.status_code == 303 and "HttpOnly" in opened.headers["set-cookie"]
    assert page.status_code == 200 and "Best so far" in page.text
    assert api.status_code == 200 and api.json()["header"]["task"] == "digits-speedrun"
    assert viewer_on_mcp.status_code == 401 and "bearer token is wrong" in viewer_on_mcp.json()["error_description"]
    async with Client(mcp_url, auth=load_tokens(search)["opt"]) as c:  # MCP is untouched by the page beside it
        assert any(t.name == "blackboard_get_leaderboard" for t in await c.list_tools())


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_dashboard_command_prints_an_address_that_opens_the_page(tmp_path: Path) -> None:
    state = make_search(tmp_path / "state")
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*CLI, "dashboard", "--state", str(state), "--port", str(port)], cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_port(port, proc, log)
        printed = log.read_text().strip().splitlines()[-1]
        address = printed.split(" at ", 1)[1]
        with httpx2.Client(follow_redirects=True, timeout=30) as h:
            page = h.get(address)
    finally:
        stop(proc)
    assert address == f"http://127.0.0.1:{port}/?token={viewer_token(state)}"
    assert page.status_code == 200 and str(page.url) == f"http://127.0.0.1:{port}/" and "digits-speedrun" in page.text


def test_dashboard_and_compare_refuse_a_directory_without_a_search(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    dash = runner.invoke(app, ["dashboard", "--state", str(empty)])
    comp = runner.invoke(app, ["compare", str(empty)])
    assert dash.exit_code == 2 and "holds no search" in dash.output and "--state directory" in dash.output
    assert comp.exit_code == 2 and "holds no search" in comp.output


def test_tokens_prints_the_viewer_token_last_and_alone_with_viewer(tmp_path: Path) -> None:
    state = make_search(tmp_path / "state")
    plain = runner.invoke(app, ["tokens", "--state", str(state)])
    alone = runner.invoke(app, ["tokens", "--state", str(state), "--viewer"])
    token = viewer_token(state)
    assert plain.exit_code == 0 and plain.output.splitlines()[-1].split()[:2] == ["viewer", token]
    assert f"?token={token}" in plain.output and token not in load_tokens(state).values()
    assert alone.exit_code == 0 and alone.output.strip() == token
    assert (state / "viewer-token").stat().st_mode & 0o777 == 0o600
