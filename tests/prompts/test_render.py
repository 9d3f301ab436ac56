"""prompts/: every arm renders from the same templates, with StrictUndefined."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
from inline_snapshot import snapshot

from prompts import render_brief, render_session_start
from servers._edge import tool_names
from tasks.registry import get_task, list_tasks

ROOT = Path(__file__).resolve().parents[2]
TASK = get_task("digits-speedrun")
TOOLS = tool_names(mounted=True)


def brief(arm: str, lineage: bool = True, specialist: str = "opt", tools: dict[str, str] = TOOLS) -> str:
    roster = {
        "roles": ["arch", "opt", "aug", "loss", "reg"],
        "generic": ["agent1", "agent2"],
        "single": ["generalist"],
    }.get(arm, [specialist])
    role = next((r for r in TASK.roster() if r.name == specialist), None) if arm == "roles" else None
    return render_brief(
        task=TASK,
        role=role,
        arm=arm,
        lineage=lineage,
        limits=TASK.limits,
        metric=TASK.metric,
        knowledge=TASK.knowledge(),
        tools=tools,
        specialist=specialist,
        roster=roster,
        margin=0.05,
    )


def headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"#{1,2} ", line)]


def test_roles_brief_sections() -> None:
    text = brief("roles")
    assert "\n## INIT.md\n" in text and "\n## SOTA.md\n" in text
    assert headings(text.split("\n## INIT.md\n")[0]) == snapshot(
        [
            "# How this search works",
            "## Hard limits (enforced by the evaluator, not negotiable)",
            "## Tools",
            "## One session, step by step",
            "## What the statuses mean",
            "## Noise and the keep rule",
            "# Your role: Optimizer and schedule (`opt`)",
            "## Staying in your lane",
            "# Reading the lineage view",
            "# Knowledge about this task",
        ]
    )


def test_role_brief_carries_scope_limits_and_protocol() -> None:
    text = brief("roles")
    scope = next(r.scope for r in TASK.roster() if r.name == "opt")
    assert scope.strip() in text and "(arch, aug, loss, reg) own the rest" in text
    assert "Wall-clock budget of the `train` phase: 30.0 s" in text and "Gate `min_accuracy`: 0.96" in text
    assert "negative means better here" in text and "currently 0.05 CPU-s" in text
    for name in (
        "blackboard_get_lineage_view",
        "snapshot_rebase_to",
        "submission_edit_workspace_file",
        "submission_preflight",
        "submission_submit_trial",
        "submission_wait_trial",
    ):
        assert f"`{name}`" in text


@pytest.mark.parametrize("arm,specialist", [("generic", "agent2"), ("single", "generalist")])
def test_generalists_get_the_whole_recipe(arm: str, specialist: str) -> None:
    text = brief(arm, specialist=specialist)
    assert "# Your scope: the whole recipe" in text and "# Your role" not in text
    assert (f"You are **{specialist}**" in text) == (arm == "generic")


def test_the_brief_states_what_calibration_recorded_only_when_there_is_something() -> None:
    plain = brief("roles")
    kw = dict(task=TASK, role=None, arm="single", lineage=True, limits=TASK.limits, metric=TASK.metric,
              knowledge={}, tools=TOOLS, specialist="generalist", roster=["generalist"])
    assert render_brief(**kw, calibrated={}) == render_brief(**kw) and "Calibrated for this search" not in plain
    text = render_brief(**kw, calibrated={"AR_TRAIN_BUDGET_S": "550", "AR_TOKEN_BUDGET": "1100000"})
    assert ("Calibrated for this search on its own machine (from the unmodified recipe's calibration runs) and "
            "applied to every trial, in the phases' environment too: `AR_TRAIN_BUDGET_S=550`, "
            "`AR_TOKEN_BUDGET=1100000`.") in text


def test_generic_agents_share_one_prompt_but_their_name() -> None:
    assert brief("generic", specialist="agent1").replace("agent1", "X") == brief(
        "generic", specialist="agent2"
    ).replace("agent2", "X")


@pytest.mark.parametrize("arm", ["roles", "generic", "single"])
def test_lineage_off_drops_the_lineage_and_says_so(arm: str) -> None:
    specialist = {"roles": "opt", "generic": "agent1", "single": "generalist"}[arm]
    text = brief(arm, lineage=False, specialist=specialist)
    assert "# The lineage is hidden in this arm" in text and "Reading the lineage view" not in text
    assert "snapshot_read_snapshot" not in text and "snapshot_diff_snapshots" not in text
    assert "only the current best" in text


def test_missing_tool_name_fails_loudly() -> None:
    tools = {k: v for k, v in TOOLS.items() if k != "wait_trial"}
    with pytest.raises(jinja2.UndefinedError):
        brief("roles", tools=tools)
    with pytest.raises(ValueError, match="arm"):
        brief("imported")


def test_session_start_frames_the_view() -> None:
    class Origin:
        parent_exp = 7

    text = render_session_start(
        view="# Lineage\nrows", specialist="opt", lineage=True, tools=TOOLS, origin=Origin(), modified=["train.py"]
    )
    assert text.startswith("# Session start — you are **opt**\n\n# Lineage\nrows")
    assert "rebased to exp 007, and these files differ from it: train.py" in text
    assert "`submission_wait_trial`" in text
    bare = render_session_start(view="v", specialist="x", lineage=False, tools=TOOLS)
    assert "`snapshot_rebase_to` with the current best's exp id first" in bare and "Start from the current best" in bare


def test_no_task_name_in_servers_or_prompts() -> None:
    names = [n for t in list_tasks() for n in {t, t.replace("-", "_")}]
    hits = [
        f"{p}: {n}"
        for d in ("servers", "prompts")
        for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in (".py", ".j2", ".md")
        for n in names
        if n in p.read_text()
    ]
    assert hits == []
