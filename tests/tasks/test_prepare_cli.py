"""`autoresearch tasks [prepare | show | recipe]`, and a prepared root sticking to a search.

The task is `fake-prepared` (tests/tasks/fakeprep), registered for each test and served by a
loopback HTTP server; AR_TASK_ROOT and HF_ENDPOINT reach the CLI through its environment.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import tasks.registry
from client.cli import app
from tasks._manifest import human, set_tasks_home, use_task_root
from tasks._prepare import status
from tests.tasks.fakeprep import task as fakeprep
from tests.tasks.loopback import Loopback

runner = CliRunner()
NAME = fakeprep.NAME


@pytest.fixture
def server(monkeypatch):
    with Loopback() as s:
        fakeprep.serve(s)
        monkeypatch.setitem(tasks.registry.TASKS, NAME, "tests.tasks.fakeprep.task:TASK")
        monkeypatch.setattr(fakeprep, "TASK", fakeprep.with_server(s.url))
        yield s
    set_tasks_home(None)
    use_task_root(NAME, None)


@pytest.fixture
def env(server, tmp_path):
    return {"AR_TASK_ROOT": str(tmp_path / "home"), "HF_ENDPOINT": server.url}


def cli(args, env):
    return runner.invoke(app, args, env=env)


def listed(env) -> dict:
    result = cli(["tasks", "--json"], env)
    assert result.exit_code == 0, result.output
    return {t["name"]: t for t in json.loads(result.stdout)}


def test_tasks_lists_the_preparation_state_and_gpus(env):
    before = listed(env)
    assert before[NAME]["state"] == "not prepared" and before[NAME]["gpus"] == 0
    assert before["tiny-golf"]["state"] == "embedded"
    assert cli(["tasks", "prepare", NAME], env).exit_code == 0
    assert listed(env)[NAME]["state"] == "prepared"
    table = cli(["tasks"], env).stdout
    row = next(line for line in table.splitlines() if NAME in line)
    assert "GPUs" in table and "prepared" in row and "not prepared" not in row


def test_show_says_the_exact_command_and_the_disk_until_prepared(env, tmp_path):
    shown = cli(["tasks", "show", NAME], env)
    assert shown.exit_code == 0
    assert f"autoresearch tasks prepare {NAME} --root {tmp_path / 'home' / NAME}" in shown.stdout
    needed = human(status(NAME, fakeprep.TASK.preparation()).needed_bytes)
    assert f"needs {needed} free there" in shown.stdout
    assert "Fixture data: public domain" in shown.stdout
    info = json.loads(cli(["tasks", "show", NAME, "--json"], env).stdout)["preparation"]
    assert info["prepared"] is False and "build" in info["missing"]
    cli(["tasks", "prepare", NAME], env)
    assert f"prepared in {tmp_path / 'home' / NAME}" in cli(["tasks", "show", NAME], env).stdout


def test_prepare_twice_fetches_once_and_says_nothing_to_do(server, env, tmp_path):
    first = cli(["tasks", "prepare", NAME], env)
    assert first.exit_code == 0, first.output
    assert "fetched upstream/train.py" in first.stdout and "built" in first.stdout
    assert (tmp_path / "home" / NAME / "recipe" / "train.py").read_bytes().endswith(fakeprep.PATCH)
    requests = len(server.log)
    again = cli(["tasks", "prepare", NAME], env)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert len(server.log) == requests
    verified = json.loads(cli(["tasks", "prepare", NAME, "--verify", "--json"], env).stdout)
    assert verified["did"] == ["re-hashed 6 file(s)"] and verified["files"] == 6


def test_prepare_reports_a_bad_checksum_and_exits_1(server, env):
    server.corrupt.add("/files/inputs.json")
    result = cli(["tasks", "prepare", NAME], env)
    assert result.exit_code == 1
    assert "downloads/inputs.json" in result.stderr and "MD5" in result.stderr


def test_prepare_refuses_before_downloading_when_the_disk_is_too_small(server, env, monkeypatch, tmp_path):
    plan = fakeprep.TASK.preparation()
    huge = shutil.disk_usage(tmp_path).free * 2
    task = fakeprep.with_server(server.url)
    monkeypatch.setattr(type(task), "preparation", lambda self: type(plan)(
        plan.sources, plan.build, download_bytes=huge, built_bytes=0, notes=plan.notes))
    result = cli(["tasks", "prepare", NAME], env)
    assert result.exit_code == 1 and "nothing was downloaded" in result.stderr
    assert server.log == []


def test_an_embedded_task_has_nothing_to_prepare(env):
    result = cli(["tasks", "prepare", "tiny-golf"], env)
    assert result.exit_code == 0 and "nothing to prepare" in result.stdout


def test_recipe_of_an_unprepared_task_says_how_to_prepare_it(env, tmp_path):
    result = cli(["tasks", "recipe", NAME, "--out", str(tmp_path / "r")], env)
    assert result.exit_code == 2 and f"autoresearch tasks prepare {NAME}" in result.stderr


def test_root_chosen_at_prepare_sticks_for_later_commands(env, tmp_path):
    elsewhere = tmp_path / "big-disk" / NAME
    assert cli(["tasks", "prepare", NAME, "--root", str(elsewhere)], env).exit_code == 0
    assert f"prepared in {elsewhere}" in cli(["tasks", "show", NAME], env).stdout
    assert cli(["tasks", "recipe", NAME, "--out", str(tmp_path / "r")], env).exit_code == 0
    assert (tmp_path / "r" / "train.py").read_bytes().endswith(fakeprep.PATCH)
    assert not (tmp_path / "home" / NAME).exists()


def test_init_refuses_an_unprepared_task_with_the_command(env, tmp_path):
    result = cli(["init", "--task", NAME, "--state", str(tmp_path / "s"), "--baseline-score", "1.0"], env)
    assert result.exit_code == 2 and f"autoresearch tasks prepare {NAME}" in result.stderr


def test_a_search_records_its_task_root_and_uses_it_later(env, tmp_path):
    from lineage.state import StateDir
    from servers.app.runtime import SearchRuntime

    elsewhere = tmp_path / "big-disk" / NAME
    cli(["tasks", "prepare", NAME, "--root", str(elsewhere)], env)
    made = cli(["init", "--task", NAME, "--state", str(tmp_path / "s"), "--baseline-score", "1.0"], env)
    assert made.exit_code == 0, made.output
    sd = StateDir.open(tmp_path / "s")
    assert sd.search.config.task_root == str(elsewhere)
    sd.close()
    set_tasks_home(tmp_path / "another-home")  # a later process that knows nothing of --root
    rt = SearchRuntime.open(tmp_path / "s", workers=0)
    try:
        assert rt.task.recipe_dir() == elsewhere / "recipe"
        assert rt.task.prepare_data(tmp_path / "ignored").public == elsewhere / "public"
    finally:
        rt.close()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(90)
def test_a_prepared_task_runs_in_the_sandbox_without_seeing_its_raw_downloads(server, tmp_path):
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from evaluator_service.sandbox import Sandbox, SandboxConfig
    from tasks._prepare import prepare

    set_tasks_home(tmp_path / "home")
    task = fakeprep.TASK
    manifest = prepare(NAME, task.preparation(), hf_endpoint=server.url)
    probe = tmp_path / "trial"
    shutil.copytree(task.recipe_dir(), probe)
    raw = [manifest.root / "downloads" / "labels.json", manifest.root / "hidden" / "labels.json"]
    assert all(p.is_file() for p in raw)  # on the host they are there
    (probe / "train.py").write_text((probe / "train.py").read_text() + "".join(
        f"assert not os.path.exists({str(p)!r}), 'LEAK'\n" for p in raw))
    data = prepare_data(task, tmp_path / "search-data")
    assert data.public == manifest.root / "public"
    sandbox = Sandbox(SandboxConfig(workdir=tmp_path / "work", uid_base=62000))
    try:
        outcome = evaluate(task, TrialSpec(task=NAME, tree=probe, label="probe"), sandbox=sandbox, data_dirs=data)
    finally:
        sandbox.close()
    assert outcome.status == "valid", (outcome.failure, outcome.log_tail)  # a leak crashes the probe
    assert outcome.metrics["accuracy"] == 1.0  # the trial read /data, the scorer read hidden/


def test_an_interrupted_prepare_elsewhere_is_resumed_by_the_command_show_gives(server, env, tmp_path):
    elsewhere = tmp_path / "big-disk" / NAME
    server.drops["/files/inputs.json"] = [500, 0, 0, 0]  # every try of this run (1 + 3 retries) is cut short
    failed = cli(["tasks", "prepare", NAME, "--root", str(elsewhere)], env)
    assert failed.exit_code == 1 and "run the same command again to resume" in failed.stderr
    shown = cli(["tasks", "show", NAME], env).stdout
    assert f"not prepared in {elsewhere}" in shown
    command = next(line.strip() for line in shown.splitlines() if line.strip().startswith("autoresearch tasks prepare"))
    assert cli(command.split()[1:], env).exit_code == 0
    assert server.requests("/files/inputs.json")[-1] == "bytes=500-"
