"""What every embedded task declares: roster, knowledge, tunables, recipe tree, preflight."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks import get_task
from tasks.base import parse_tunables

pytestmark = pytest.mark.parametrize("name", ["digits-speedrun", "tiny-golf"])

ROSTERS = {
    "digits-speedrun": ["arch", "opt", "aug", "loss", "reg"],
    "tiny-golf": ["arch", "opt", "quant", "reg", "loss", "curr", "tok", "eval", "meta"],
}


def test_roster_names_and_scopes(name):
    roles = get_task(name).roster()
    assert [r.name for r in roles] == ROSTERS[name]
    for role in roles:
        assert role.title
        assert len(role.scope) > 150, role.name
        assert "Out of scope" in role.scope and "Edit radius" in role.scope, role.name


def test_knowledge_has_init_first_and_notes(name):
    knowledge = get_task(name).knowledge()
    assert list(knowledge) == ["INIT.md", "SOTA.md"]
    init = knowledge["INIT.md"]
    task = get_task(name)
    assert task.metric.name in init
    for tunable in parse_tunables((task.recipe_dir() / task.entrypoint).read_text()):
        assert f"`{tunable.name}`" in init, tunable.name


def test_tunable_block_parses_with_values_inside_ranges(name):
    task = get_task(name)
    source = (task.recipe_dir() / task.entrypoint).read_text()
    tunables = parse_tunables(source)
    assert 4 <= len(tunables) <= 8
    assert "# --- tunables ---" in source
    block_start = source.splitlines().index("# --- tunables ---") + 1
    for i, t in enumerate(tunables):
        assert t.line == block_start + 1 + i  # contiguous, right under the marker
        assert t.low <= t.value <= t.high, t.name


def test_recipe_dir_is_exactly_the_editable_tree(name):
    task = get_task(name)
    files = sorted(str(p.relative_to(task.recipe_dir())) for p in task.recipe_dir().rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert files == sorted(task.editable)
    assert task.entrypoint in task.editable


def test_limits_plan_and_resources(name):
    task = get_task(name)
    assert task.resources.gpus == 0 and task.resources.nproc_per_trial == 1
    kinds = [p.kind for p in task.run_plan.phases]
    assert kinds == ["smoke", "main"]
    assert set(task.limits.phase_budgets_s) >= {p.name for p in task.run_plan.phases}
    assert task.calibration_seeds >= 3
    assert (task.scorer_dir() / "score.py").is_file()
    assert task.scorer_argv() == ("{python}", "{scorer_dir}/score.py")


def test_starting_recipe_passes_preflight(name):
    task = get_task(name)
    result = task.preflight(task.recipe_dir())
    assert result.ok, result.message


def test_preflight_reports_syntax_error_with_file_and_line(name, tmp_path):
    task = get_task(name)
    tree = Path(shutil.copytree(task.recipe_dir(), tmp_path / "tree"))
    target = tree / task.editable[-1]
    lines = target.read_text().splitlines()
    target.write_text("\n".join([*lines, "def broken(:", ""]))
    result = task.preflight(tree)
    assert not result.ok
    assert result.status == "preflight_crash"
    assert f"{task.editable[-1]}:{len(lines) + 1}:" in result.message


def test_preflight_reports_a_missing_editable_file(name, tmp_path):
    task = get_task(name)
    tree = Path(shutil.copytree(task.recipe_dir(), tmp_path / "tree"))
    (tree / task.entrypoint).unlink()
    result = task.preflight(tree)
    assert result.status == "preflight_crash"
    assert f"{task.entrypoint}: missing" in result.message
