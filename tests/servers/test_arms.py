"""Arms are configuration: rosters (roles | generic | single) and the lineage-off control."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client

from lineage.models import Outcome
from servers.app.runtime import SearchRuntime
from servers.app.init import roster_names
from servers.suite import build_suite
from tasks.registry import get_task
from tests.servers.conftest import TASK, make_search


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


def test_rosters_of_the_arms() -> None:
    task = get_task(TASK)
    assert roster_names(task, "roles") == ("arch", "opt", "aug", "loss", "reg")
    assert roster_names(task, "generic") == ("agent1", "agent2", "agent3", "agent4", "agent5")
    assert roster_names(task, "single") == ("generalist",)
    with pytest.raises(ValueError, match="roles, generic, single"):
        roster_names(task, "many")


@pytest.fixture
def off(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A lineage-off search where opt kept exp 1, arch crashed exp 2 and kept... nothing else."""
    rt = SearchRuntime.open(make_search(tmp_path / "off", lineage=False), workers=0)
    for who in ("opt", "arch"):
        rt.store.create_trial(
            rt.search_id,
            specialist=who,
            hypothesis=f"secret idea of {who}",
            parent_exp=0,
            snapshot=rt.workspace(who).snapshot(),
        )
    for exp, score in ((1, 1.5), (2, 1.9)):
        rt.store.claim_trial(rt.search_id, "w", exp_id=exp)
        rt.store.finish_trial(rt.search_id, exp, Outcome(status="valid", score=score))
    yield rt
    rt.close()


async def test_lineage_off_shows_only_the_best_and_own_rows(off: SearchRuntime) -> None:
    async with Client(build_suite(off, "arch", servers=("blackboard", "snapshot", "submission"))) as c:
        tools = {t.name for t in await c.list_tools()}
        view = (await call(c, "blackboard_get_lineage_view")).content[0].text
        board = (await call(c, "blackboard_get_leaderboard")).content[0].text
        listed = (await call(c, "blackboard_list_trials")).structured_content
        best = await call(c, "blackboard_get_trial", {"exp_id": 1})
        own = await call(c, "blackboard_get_trial", {"exp_id": 2})
        base = await call(c, "blackboard_get_trial", {"exp_id": 0})
        tree = (await call(c, "blackboard_get_tree")).structured_content
        brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
    assert {"snapshot_read_snapshot", "snapshot_diff_snapshots", "snapshot_list_snapshot_files"}.isdisjoint(tools)
    assert "snapshot_rebase_to" in tools
    assert "lineage is hidden" in view and "secret idea of opt" in view and "secret idea of arch" not in board
    assert [t["exp_id"] for t in listed["trials"]] == [1, 2] and "lineage off" in listed["note"]
    assert not best.is_error and not own.is_error
    assert base.is_error and "hidden" in base.content[0].text and "exp 1" in base.content[0].text
    assert "exp_id\t" not in tree["content"]
    assert "The lineage is hidden in this arm" in brief and "Reading the lineage view" not in brief
    assert "snapshot_read_snapshot" not in brief


async def test_lineage_off_rebase_reaches_only_the_best(off: SearchRuntime) -> None:
    async with Client(build_suite(off, "arch", servers=("snapshot",))) as c:
        base = await call(c, "snapshot_rebase_to", {"exp_id": 0})
        best = await call(c, "snapshot_rebase_to", {"exp_id": 1})
    assert base.is_error and "only to the current best, exp 1" in base.content[0].text
    assert not best.is_error and off.workspace("arch").origin().parent_exp == 1


def test_lineage_off_snapshot_reads_refused_when_called_directly(off: SearchRuntime) -> None:
    from servers.app import trees
    from servers.exceptions import HiddenError

    with pytest.raises(HiddenError, match="hidden in this arm"):
        trees.read(off, "arch", 1, "train.py", 1, 10)
    with pytest.raises(HiddenError):
        trees.diff(off, "arch", 1, None, 1000)


@pytest.mark.parametrize(
    "roster,name,expect,absent",
    [
        ("generic", "agent3", "one of 5 researchers with identical instructions", "# Your role"),
        ("single", "generalist", "You are the only researcher", "# Your role"),
    ],
)
async def test_generic_and_single_get_the_whole_recipe_scope(
    tmp_path: Path, roster: str, name: str, expect: str, absent: str
) -> None:
    rt = SearchRuntime.open(make_search(tmp_path / roster, roster=roster), workers=0)
    try:
        async with Client(build_suite(rt, name, servers=("blackboard",))) as c:
            brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
        async with Client(build_suite(rt, "opt", servers=("blackboard",))) as c:
            stranger = await call(c, "blackboard_get_lineage_view")
    finally:
        rt.close()
    assert expect in brief and absent not in brief and "# Your scope: the whole recipe" in brief
    assert stranger.is_error and "not a specialist of this search" in stranger.content[0].text
