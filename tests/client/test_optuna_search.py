"""The Optuna proposer end to end: real `autoresearch run` processes, real MCP tools, a real
SQLite lineage and real sandboxed trials. The study lives only in the lineage: it survives a
kill -9, and a later `run` continues it, point for point."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from client.optuna_agent import next_point, point_key, read_point
from client.proposer import best_row
from lineage.models import TrialStatus
from lineage.state import StateDir
from servers.models import TrialSummary
from tasks.base import parse_tunables
from tasks.registry import get_task
from tests.client.conftest import QUICK, REPO, cli, popen_cli

pytestmark = [pytest.mark.slow]
QUICK_RECIPE = (REPO / "tests/client/quicktask/recipe/train.py").read_text()


def _rows(state: Path) -> list:
    sd = StateDir.open(state)
    try:
        return sd.store.list_trials(sd.search_id)
    finally:
        sd.close()


def _wait_until_running_after(state: Path, finished: int, timeout: float = 90.0) -> None:
    """Until `finished` trials are done and another is running (so the kill lands mid-trial)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / "search.json").exists():
            rows = [t for t in _rows(state) if t.exp_id > 0]
            done = sum(t.status.is_finished() for t in rows)
            if done >= finished and any(t.status == TrialStatus.RUNNING for t in rows):
                return
        time.sleep(0.2)
    raise AssertionError(f"no trial running after {finished} finished")


def _replayed(rows: list, exp_id: int, seed: int, specialist: str) -> dict:
    """The point a session proposes when it reads the rows before `exp_id` (all finished then)."""
    seen = [TrialSummary.of(t).model_dump() for t in rows if t.exp_id < exp_id]
    base = {t.name: float(t.value) for t in parse_tunables(QUICK_RECIPE)}
    best = best_row(seen, lower_is_better=True)
    current = read_point(best["hypothesis"]) or base
    point, _ = next_point(seen, parse_tunables(QUICK_RECIPE), sampler="tpe", seed=seed, specialist=specialist,
                          lower_is_better=True, current=current, baseline=base)
    return point


@pytest.mark.timeout(300)
def test_kill_9_then_reruns_continue_one_study_without_repeating_a_point(state):
    args = ["run", "--task", QUICK, "--state", str(state), "--agent", "optuna", "--roster", "single",
            "--baseline-score", "19", "--seed", "4", "--grace", "30s", "--slots", "1"]
    proc = popen_cli(*args, "--trials", "10", sleep_s=1.0)
    _wait_until_running_after(state, finished=3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    killed_with = len(_rows(state)) - 1
    resumed = cli(*args, "--trials", "10", timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    more = cli(*args, "--trials", "14", timeout=200)
    assert more.returncode == 0, more.stderr[-3000:]
    rows = _rows(state)
    trials = [t for t in rows if t.exp_id > 0]
    assert 4 <= killed_with < 10 and [t.exp_id for t in trials] == list(range(1, 15))
    assert all(t.status.is_finished() and t.status.is_valid() for t in trials)
    points = {t.exp_id: read_point(t.hypothesis) for t in trials}
    assert all(p is not None and set(p) == {"X", "Y", "WIDTH"} for p in points.values())
    keys = [point_key(p) for p in points.values()]
    base = point_key({t.name: t.value for t in parse_tunables(QUICK_RECIPE)})
    assert len(set(keys)) == 14 and base not in keys  # no point repeated, across the kill and both reruns
    for t in trials[10:]:  # the last run's study held every earlier trial (and the baseline) ...
        assert f"study told {t.exp_id} complete;" in t.notes, t.notes
        # ... and its points are exactly what that study asks next
        assert _replayed(rows, t.exp_id, seed=4, specialist="generalist") == points[t.exp_id], t.exp_id
    best = min(t.score for t in trials)
    assert best < 19.0  # the study found a better point than the start


@pytest.mark.timeout(1200)
def test_a_12_trial_optuna_search_on_digits_with_roles(tmp_path):
    state = tmp_path / "digits"
    run = cli("run", "--task", "digits-speedrun", "--state", str(state), "--agent", "optuna", "--trials", "12",
              "--calibration-seeds", "2", "--seed", "0", "--pause-after", "2", "--backoff", "1s", timeout=1150)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "stopped: trial budget" in run.stderr
    assert "aug paused: 2 sessions in a row without a submission (last: owns_no_tunables)" in run.stderr
    rows = [t for t in _rows(state) if t.exp_id > 0]
    assert [t.exp_id for t in rows] == list(range(1, 13)) and all(t.status.is_finished() for t in rows)
    task = get_task("digits-speedrun")
    tunables = parse_tunables((task.recipe_dir() / task.entrypoint).read_text(), strict=True)
    owned = {role: {t.name for t in tunables if role in t.owners} for role in ("opt", "arch", "reg", "loss")}
    for t in rows:  # each point covers exactly its role's constants, inside their declared ranges
        point = read_point(t.hypothesis)
        assert point is not None and set(point) == owned[t.specialist], (t.specialist, t.hypothesis)
        assert all(x.low <= point[x.name] <= x.high for x in tunables if x.name in point)
    assert {t.specialist for t in rows} == set(owned)
    report = json.loads(cli("report", "--state", str(state), "--json").stdout)
    assert report["trials"] == 12
