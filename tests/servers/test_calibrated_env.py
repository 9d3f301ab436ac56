"""Settings a task derives from calibration: recorded by init, applied to every evaluation of the search.

The task (`calibrated_task`, a dotted path) derives a train budget from its calibration runs'
measured train time, as nanochat-d12 derives its compute budget; its recipe writes the budget
its phase saw. Real sandboxes, a real SQLite file, the search's own worker and evaluator jobs;
slow, since CPU slots are leased host-wide and a busy machine's other evaluators hold them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from typer.testing import CliRunner

from client.cli import app
from lineage._render_report import search_report
from lineage.state import StateDir
from servers.app.init import Baseline, init_search
from servers.app.runtime import SearchRuntime, load_search_task
from servers.suite import build_suite
from tasks.exceptions import TaskSettingsError
from tests.servers.calibrated_task.task import ENV_RUNS, ENV_TRAIN_S, SLACK_S
from tests.servers.calibrated_task.task import TASK as CALIBRATED

TASK = "tests.servers.calibrated_task.task:TASK"


def _config(state: Path):  # type: ignore[no-untyped-def]
    sd = StateDir.open(state)
    try:
        return sd.search.config, sd.store.list_events(sd.search_id), sd.store.get_trials(sd.search_id, [0])[0]
    finally:
        sd.close()


async def _trial(rt: SearchRuntime, c: Client) -> dict:  # type: ignore[type-arg]
    """One trial by alpha through the submission tools, evaluated by the search's worker."""
    await c.call_tool("submission_edit_workspace_file", {"path": "train.py", "old_text": "X = 0.0",
                                                         "new_text": "X = 3.0"})
    sub = (await c.call_tool("submission_submit_trial", {"hypothesis": "X at the target lowers the loss.",
                                                        "expected_delta": -9.0})).structured_content
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        info = (await c.call_tool("submission_wait_trial", {"exp_id": sub["exp_id"], "timeout_s": 5})
                ).structured_content
        if info["finished"]:
            break
    return rt.store.get_trial(rt.search_id, sub["exp_id"]).model_dump()


def _job(rt: SearchRuntime) -> dict:  # type: ignore[type-arg]
    """One evaluator job of the search's recipe (as an MCP client's `evaluate` queues it)."""
    jobs = rt.jobs()
    view = jobs.evaluate("alpha", files={"train.py": (CALIBRATED.recipe_dir() / "train.py").read_text()},
                         archive_b64=None, task=None, seeds=None)
    deadline = time.monotonic() + 200
    while not view.finished and time.monotonic() < deadline:
        time.sleep(0.2)
        view = jobs.get("alpha", view.job_id)
    assert view.outcome is not None
    return view.outcome.metrics


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_init_records_the_calibrated_budget_and_the_search_evaluates_under_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    init_search(TASK, state, calibration_seeds=2, confirm_runs=0)
    cfg, events, baseline = _config(state)
    env = cfg.calibrated_env
    budget = float(env[ENV_TRAIN_S])
    assert set(env) == {ENV_TRAIN_S, ENV_RUNS} and env[ENV_RUNS] == "2"  # derived from both calibration runs
    assert SLACK_S < budget < SLACK_S + 30 and budget != CALIBRATED.limits.phase_budgets_s["train"]
    assert next(e for e in events if e.kind == "init").payload["calibrated_env"] == env
    assert baseline.metrics["runs"] == 2

    rt = SearchRuntime.open(state, workers=2)  # two slots: either may be free on a busy machine
    try:
        assert rt.task.limits.phase_budgets_s["train"] == budget
        async with rt.running(), Client(build_suite(rt, "alpha")) as c:
            row = await _trial(rt, c)
            job = await anyio.to_thread.run_sync(_job, rt)
            brief = (await c.get_prompt("blackboard_specialist_brief")).messages[0].content.text
        report = search_report(rt.store, rt.search_id)
    finally:
        rt.close()
    # the trial's sandbox saw the recorded budget, and the task that scored it was the search's
    assert row["status"] in ("keep", "discard") and row["metrics"]["seen"] == env[ENV_TRAIN_S]
    assert row["metrics"]["train_budget_s"] == budget and row["metrics"]["calibrated_runs"] == "2"
    assert job["seen"] == env[ENV_TRAIN_S] and job["train_budget_s"] == budget
    assert f"`{ENV_TRAIN_S}={env[ENV_TRAIN_S]}`" in brief and f"`train` phase: {round(budget, 1)} s" in brief
    assert report["calibrated_env"] == env


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_recalibration_runs_under_the_recorded_budget_and_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    init_search(TASK, state, calibration_seeds=1, confirm_runs=0)
    before = _config(state)[0]
    res = CliRunner().invoke(app, ["calibrate", "--task", TASK, "--state", str(state), "--seeds", "1", "--json"])
    assert res.exit_code == 0, res.output
    cal = json.loads(res.output.strip().splitlines()[-1])
    assert cal["metrics"][0]["seen"] == before.calibrated_env[ENV_TRAIN_S]
    assert _config(state)[0].calibrated_env == before.calibrated_env
    report = CliRunner().invoke(app, ["report", "--state", str(state)])
    assert report.exit_code == 0 and f"Calibrated for this search (every trial runs under it): {ENV_TRAIN_S}=" \
        f"{before.calibrated_env[ENV_TRAIN_S]}, {ENV_RUNS}=1" in report.output


def test_a_given_baseline_records_nothing_and_the_defaults_hold(tmp_path: Path) -> None:
    init_search(TASK, tmp_path / "state", baseline=Baseline(score=19.0), confirm_runs=0)
    cfg = _config(tmp_path / "state")[0]
    assert cfg.calibrated_env == {}
    assert load_search_task(cfg).limits == CALIBRATED.limits


def test_settings_a_task_cannot_take_are_refused(tmp_path: Path) -> None:
    init_search("tests.client.quicktask.task:TASK", tmp_path / "state", baseline=Baseline(score=19.0), confirm_runs=0)
    cfg = _config(tmp_path / "state")[0].model_copy(update={"calibrated_env": {ENV_TRAIN_S: "5"}})
    with pytest.raises(TaskSettingsError, match="cannot take the settings"):
        load_search_task(cfg)
