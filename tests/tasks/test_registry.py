"""The registry: names to tasks, dotted paths, clear errors, and the package's exports."""

from __future__ import annotations

import pytest

import tasks
from tasks import Task, UnknownTaskError, describe_task, get_task, list_tasks


def test_registry_lists_the_embedded_tasks():
    assert list_tasks() == ["cifar-airbench96", "digits-speedrun", "nanochat-d12", "parameter-golf", "tiny-golf"]


@pytest.mark.parametrize("name", ["digits-speedrun", "tiny-golf"])
def test_get_task_returns_a_task_with_that_name(name):
    task = get_task(name)
    assert isinstance(task, Task)
    assert task.name == name


def test_unknown_task_error_lists_known_names():
    with pytest.raises(UnknownTaskError, match="known tasks: cifar-airbench96, digits-speedrun, nanochat-d12, parameter-golf, tiny-golf"):
        get_task("cifar-speedrun")


def test_unknown_task_error_is_a_lookup_error():
    with pytest.raises(LookupError):
        get_task("nope")


def test_dotted_path_loads_a_user_task():
    assert get_task("tasks.tiny_golf.task:TASK") is get_task("tiny-golf")


@pytest.mark.parametrize("path", ["tasks.no_such_module:TASK", "tasks.tiny_golf.task:NOPE",
                                  "tasks.tiny_golf.task:ARTIFACT_CAP"])
def test_dotted_path_that_is_not_a_task_is_rejected(path):
    with pytest.raises(UnknownTaskError, match="task"):
        get_task(path)


def test_describe_task_is_plain_data_for_the_cli():
    info = describe_task(get_task("tiny-golf"))
    assert info["metric"] == {"name": "val_bpb", "unit": "bpb", "lower_is_better": True, "clock": "wall"}
    assert info["limits"]["artifact_cap_bytes"] == 400_000
    assert info["limits"]["budget_clock"] == "cpu"
    assert describe_task(get_task("digits-speedrun"))["metric"]["clock"] == "cpu"
    assert [r["name"] for r in info["roster"]][:3] == ["arch", "opt", "quant"]
    assert "QUANT_BITS" in [t["name"] for t in info["tunables"]]
    assert info["knowledge"] == ["INIT.md", "SOTA.md"]


def test_package_exports_are_explicit():
    assert sorted(tasks.__all__) == sorted([
        "TASKS", "DataIntegrityError", "Task", "TaskError", "UnknownTaskError",
        "describe_task", "get_task", "list_tasks",
    ])
    for name in tasks.__all__:
        assert hasattr(tasks, name)


def test_a_profile_changes_seeds_budgets_and_phase_environment():
    from tasks.registry import get_task, with_profile

    full = get_task("tests.tasks.profiled:TASK")
    small = get_task("tests.tasks.profiled:TASK", profile="small")
    assert (full.profile, small.profile) == ("", "small")
    assert small.run_plan.seeds == 2 and small.limits.phase_budgets_s["train"] == 30.0
    assert small.limits.phase_budgets_s["eval"] == full.limits.phase_budgets_s["eval"]
    assert all(p.env["SLIDING"] == "0" for p in small.run_plan.phases)
    assert "SLIDING" not in full.run_plan.phases[0].env
    with pytest.raises(UnknownTaskError, match="no profile 'huge'; its profiles: small"):
        with_profile(full, "huge")
    assert describe_task(full)["profiles"][0]["name"] == "small"


def test_a_search_records_its_profile_and_its_views_show_it(tmp_path):
    from lineage.render import render_lineage_view
    from lineage.state import StateDir
    from servers.app.init import Baseline, init_search

    init_search("tests.tasks.profiled:TASK", tmp_path / "s", profile="small",
                baseline=Baseline(score=3.0, spread=0.1, n=1))
    state = StateDir.open(tmp_path / "s")
    try:
        assert state.search.config.profile == "small"
        view = render_lineage_view(state.store, state.search_id, "arch")
        assert "[profile small]" in view.splitlines()[0]
    finally:
        state.close()
