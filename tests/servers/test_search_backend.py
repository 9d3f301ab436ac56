"""A search names its backend (`init --backend`, `SearchConfig.backend`), and every evaluation of
the search goes through it: its trials, calibration and evaluator jobs. Checked with a backend
named by dotted path (tests/servers/journal_backend.py: the local backend plus a journal of its
jobs), real sandboxes and a real SQLite file; bad names and options are refused before anything
is recorded."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from client.run import ConfigMismatchError, ensure_search
from lineage.state import StateDir, StateLayout
from servers.app.runtime import SearchRuntime
from servers.suite import build_suite
from tests.servers.conftest import make_search

JOURNAL = "tests.servers.journal_backend.JournalBackend"


def _journal(state: Path) -> list[list[str]]:
    path = StateLayout(state).evaluator / "jobs.log"
    return [line.split("\t") for line in path.read_text().splitlines()] if path.exists() else []


def test_init_refuses_a_backend_or_option_it_cannot_use_and_records_nothing(tmp_path: Path) -> None:
    cases = [
        (["--backend", "nope"], "unknown backend 'nope': use one of local, slurm"),
        (["--backend-option", "partition=gpu"], "backend 'local' takes no options; drop partition"),
        (["--backend", JOURNAL, "--backend-option", "colour=red"], "has no option colour; its options are"),
        (["--backend", JOURNAL, "--backend-option", "journal=../escape"], "option journal: String should match"),
        (["--backend-option", "noequals"], "write a backend option as KEY=VALUE"),
    ]
    for extra, said in cases:
        state = tmp_path / "s"
        result = CliRunner().invoke(app, ["init", "--task", "digits-speedrun", "--state", str(state),
                                          "--baseline-score", "2.0", *extra])
        assert result.exit_code != 0, (extra, result.output)
        said_here = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # rich's error box unwrapped
        assert said in said_here, (extra, result.output)
        assert not state.exists(), extra


def test_a_resumed_search_keeps_its_backend_and_refuses_another(tmp_path: Path) -> None:
    state = make_search(tmp_path / "state", backend=JOURNAL, backend_options={"journal": "jobs.log"})
    sd = StateDir.open(state)
    try:
        cfg = sd.search.config
        assert (cfg.backend, cfg.backend_options) == (JOURNAL, {"journal": "jobs.log"})
        init = next(e for e in sd.store.list_events(sd.search_id) if e.kind == "init")
        assert init.payload["backend"] == JOURNAL
    finally:
        sd.close()
    assert ensure_search(state, "digits-speedrun", roster="roles", lineage=True, profile="") is False
    with pytest.raises(ConfigMismatchError, match=f"backend '{JOURNAL}' \\(asked: 'local'\\)"):
        ensure_search(state, "digits-speedrun", roster="roles", lineage=True, profile="", backend="local")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_trials_and_evaluator_jobs_of_a_search_run_on_its_backend(tmp_path: Path) -> None:
    state = make_search(tmp_path / "state", backend=JOURNAL, backend_options={"journal": "jobs.log"})
    rt = SearchRuntime.open(state, workers=1)
    try:
        async with rt.running():
            from fastmcp import Client

            async with Client(build_suite(rt, "opt")) as c:
                sub = (await c.call_tool("submission_submit_trial", {
                    "hypothesis": "The starting recipe, as a trial.", "expected_delta": 0.0})).structured_content
                deadline = time.monotonic() + 500
                info: dict = {}
                while time.monotonic() < deadline and not info.get("finished"):
                    info = (await c.call_tool("submission_wait_trial", {"exp_id": sub["exp_id"], "timeout_s": 20})
                            ).structured_content
                assert info.get("finished"), info
            recipe = {name: (rt.task.recipe_dir() / name).read_text() for name in rt.task.editable}
            view = rt.jobs().evaluate("opt", files=recipe, archive_b64=None, task=None, seeds=1)
            deadline = time.monotonic() + 300
            while not view.finished and time.monotonic() < deadline:
                time.sleep(0.5)
                view = rt.jobs().get("opt", view.job_id)
            assert view.finished and view.outcome is not None
            assert type(rt.backend()).__name__ == "JournalBackend"
            assert rt.backend().list() == []  # every job, trial and evaluator job, forgotten once finished
    finally:
        rt.close()
    sd = StateDir.open(state)
    try:
        trial = sd.store.get_trial(sd.search_id, sub["exp_id"])
    finally:
        sd.close()
    assert trial.status.value in ("keep", "discard", "disqualified", "valid"), trial
    labels = [j[1] for j in _journal(state)]
    assert labels[0] == f"exp {sub['exp_id']} by opt"
    assert len(labels) == 2  # the trial and the evaluator job, nothing run around the backend


def test_a_workers_search_on_sqlite_is_refused_before_calibration_starts(tmp_path: Path) -> None:
    state = tmp_path / "s"
    result = CliRunner().invoke(app, ["init", "--task", "digits-speedrun", "--state", str(state),
                                      "--backend", "workers"])  # no baseline given: init would calibrate
    assert result.exit_code != 0, result.output
    assert "pass --database-url postgresql://" in " ".join(result.output.split()), result.output
    assert not state.exists()  # calibration would have made <state>/evaluator and data
