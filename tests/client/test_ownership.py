"""Tunables declare their owners; in a roles search a proposer changes only what its role owns.

The searches are real: the quick task's `OWNED` variant (alpha owns X and WIDTH, beta owns Y
and WIDTH, gamma owns none), real MCP tools, a real SQLite lineage, real sandboxed trials.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from client.optuna_agent import read_point
from client.run import AgentChoice, ensure_search, run_search
from client.supervisor import RunLimits
from lineage.state import StateDir
from servers.app.init import Baseline
from tasks.base import parse_tunables
from tasks.registry import get_task, list_tasks

OWNED = "tests.client.quicktask.task:OWNED"
MINE = {"alpha": {"X", "WIDTH"}, "beta": {"Y", "WIDTH"}, "gamma": set()}
_SET = re.compile(r"^set (?P<name>[A-Z][A-Z0-9_]*) ")


def test_owner_parses_beside_log_and_hint_in_any_order():
    (t,) = parse_tunables("BATCH = 32  # tunable int [8, 512] owner=opt,meta log hint=higher")
    assert (t.owners, t.log, t.hint) == (("opt", "meta"), True, "higher")
    assert t.owned_by("opt") and t.owned_by("meta") and not t.owned_by("arch")
    (free,) = parse_tunables("LR = 0.1  # tunable float [0.01, 1] log")
    assert free.owners == () and free.owned_by("anyone")  # no owner: every role may change it


@pytest.mark.parametrize(("line", "says"), [
    ("LR = 0.1  # tunable float [0.01, 1] ownr=opt", "unknown tunable option 'ownr=opt'"),
    ("LR = 0.1  # tunable float [0.01, 1] owner=", "unknown tunable option 'owner='"),
    ("LR = 0.1  # tunable flaot [0.01, 1]", "is not a tunable; write NAME = VALUE  # tunable int|float"),
    ("LR = 0.1  # tunable float [0, 1] log", "cannot be a log scale"),
    ("LR = 0.1  # tunable float [1, 0.01]", "is inverted"),
])
def test_strict_parsing_says_what_is_wrong_and_what_to_write(line, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_tunables(f"\n{line}\n", strict=True)
    assert "line 2" in str(pytest.raises(ValueError, parse_tunables, f"\n{line}\n", strict=True).value)


def test_lenient_parsing_skips_what_it_cannot_read():
    assert [t.name for t in parse_tunables("A = 1  # tunable int [0, 3] ownr=x\nB = 2  # tunable intt [0, 3]\n")] == ["A"]


@pytest.mark.parametrize("name", list_tasks())
def test_every_declared_owner_is_a_role_of_the_task_roster(name):
    task = get_task(name)
    recipe = task.recipe_dir() / task.entrypoint
    if not recipe.is_file():  # a task prepared on the user's machine; its own tests check its owners
        pytest.skip(f"{name} is not prepared here, so it has no recipe to read")
    roles = {r.name for r in task.roster()}
    tunables = parse_tunables(recipe.read_text(), strict=True)
    assert {o for t in tunables for o in t.owners} <= roles


def test_shipped_recipes_give_their_constants_owners_from_the_roster():
    digits = get_task("digits-speedrun")
    owned = {t.name: t.owners for t in parse_tunables((digits.recipe_dir() / "train.py").read_text(), strict=True)}
    assert owned == {"EPOCHS": ("opt",), "BATCH_SIZE": ("opt",), "LR": ("opt",), "HIDDEN": ("arch",),
                     "WEIGHT_DECAY": ("reg",), "LABEL_SMOOTHING": ("loss",)}  # aug owns none
    golf = get_task("tiny-golf")
    golf_owned = [t.owners for t in parse_tunables((golf.recipe_dir() / "train.py").read_text(), strict=True)]
    assert all("meta" in o and len(o) == 2 for o in golf_owned)  # the analyst sweeps every constant


def _names(hypothesis: str) -> set[str]:
    point = read_point(hypothesis)
    if point is not None:
        return set(point)
    m = _SET.match(hypothesis)
    assert m, hypothesis
    return {m["name"]}


async def _search(state: Path, agent: str, roster: str, trials: int) -> tuple[list, list, list]:
    ensure_search(state, OWNED, roster=roster, lineage=True, baseline=Baseline(score=19.0))
    limits = RunLimits(trials=trials, stagger_s=0, poll_s=0.05, backoff_s=0.05, pause_after=2, deadline_s=90)
    progress = await run_search(state, AgentChoice.parse(agent), limits, seed=3)
    assert progress.stop_reason == "trial budget"
    sd = StateDir.open(state)
    try:
        rows = sd.store.list_trials(sd.search_id, include_baseline=False)
        return rows, sd.store.list_sessions(sd.search_id), sd.store.list_events(sd.search_id)
    finally:
        sd.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("agent", ["scripted", "optuna", "optuna:random"])
async def test_a_roles_search_changes_only_owned_constants(tmp_path, agent):
    rows, sessions, events = await _search(tmp_path / "s", agent, "roles", trials=8)
    assert len(rows) == 8 and {t.specialist for t in rows} == {"alpha", "beta"}
    for t in rows:  # every hypothesis, read back, names only constants its specialist owns
        assert _names(t.hypothesis) <= MINE[t.specialist], (t.specialist, t.hypothesis)
    if agent.startswith("optuna"):  # a point covers exactly the role's constants
        assert all(_names(t.hypothesis) == MINE[t.specialist] for t in rows)
    gamma = [s for s in sessions if s.specialist == "gamma"]
    assert gamma and {s.stop_reason for s in gamma} == {"owns_no_tunables"} and all(s.exp_id is None for s in gamma)
    paused = [e.payload for e in events if e.kind == "specialist_paused" and e.specialist == "gamma"]
    assert paused and "owns_no_tunables" in paused[0]["reason"]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("roster", ["generic", "single"])
async def test_generic_and_single_rosters_see_every_constant(tmp_path, roster):
    rows, sessions, _ = await _search(tmp_path / "s", "optuna", roster, trials=4)
    assert len(rows) == 4
    assert all(_names(t.hypothesis) == {"X", "Y", "WIDTH"} for t in rows)
    assert "owns_no_tunables" not in {s.stop_reason for s in sessions}
