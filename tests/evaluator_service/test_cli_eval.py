"""`autoresearch tasks | evaluate | calibrate` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from client.cli import app
from lineage.models import SearchConfig
from lineage.state import StateDir

TOY = "tests.evaluator_service.toytask:CLI_TOY"
CRASH = "tests.evaluator_service.toytask:CLI_CRASH"
runner = CliRunner()


def test_tasks_lists_the_registry():
    result = runner.invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0
    assert {"digits-speedrun", "tiny-golf"} <= {t["name"] for t in json.loads(result.stdout)}


def test_tasks_show_has_limits_and_roster():
    result = runner.invoke(app, ["tasks", "show", "tiny-golf", "--json"])
    info = json.loads(result.stdout)
    assert info["limits"]["artifact_cap_bytes"] and info["roster"]
    assert runner.invoke(app, ["tasks", "show", "tiny-golf"]).exit_code == 0


def test_tasks_recipe_writes_the_starting_files(tmp_path):
    result = runner.invoke(app, ["tasks", "recipe", "digits-speedrun", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0 and (tmp_path / "r" / "train.py").is_file()
    again = runner.invoke(app, ["tasks", "recipe", "digits-speedrun", "--out", str(tmp_path / "r")])
    assert again.exit_code == 2 and "--force" in again.stderr


def test_unknown_task_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["evaluate", "--task", "nope", str(tmp_path)])
    assert result.exit_code == 2 and "unknown task" in result.stderr


def test_evaluate_json_prints_exactly_one_object(tmp_path):
    from tests.evaluator_service.toytask import CLI_TOY

    env = {"AR_CACHE_DIR": str(tmp_path / "cache")}
    result = runner.invoke(app, ["evaluate", "--task", TOY, "--json", str(CLI_TOY.recipe_dir())], env=env)
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert {"status", "score", "metrics", "timings", "artifact_bytes", "failure", "self_reported"} <= set(outcome)
    assert outcome["status"] == "valid" and outcome["timings"]["train"] > 0 and outcome["seeds"] == 2


def test_evaluate_a_single_file_swaps_it_into_the_recipe(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text("import sys\nsys.exit('my edit broke it')\n")
    env = {"AR_CACHE_DIR": str(tmp_path / "cache")}
    result = runner.invoke(app, ["evaluate", "--task", TOY, "--seeds", "1", str(recipe)], env=env)
    assert result.exit_code == 1
    assert "crash" in result.stdout and "my edit broke it" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_calibrate_writes_the_baseline_row(tmp_path):
    from tests.evaluator_service.toytask import CLI_TOY

    state = tmp_path / "state"
    StateDir.create(state, SearchConfig(task=CLI_TOY.name)).close()
    result = runner.invoke(app, ["calibrate", "--task", TOY, "--seeds", "2", "--slots", "2", "--state", str(state),
                                 "--json"])
    assert result.exit_code == 0, result.output
    cal = json.loads(result.stdout)
    assert cal["runs"] == 2 and cal["baseline_exp"] == 0
    sd = StateDir.open(state)
    assert sd.search.baseline_n == 2 and sd.search.baseline_score == pytest.approx(cal["mean"])
    sd.close()


def test_calibrate_refuses_a_state_without_a_search(tmp_path):
    result = runner.invoke(app, ["calibrate", "--task", TOY, "--state", str(tmp_path / "none")])
    assert result.exit_code == 2 and "autoresearch init" in result.stderr
