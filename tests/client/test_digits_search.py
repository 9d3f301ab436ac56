"""The embedded default end to end: a scripted search on digits-speedrun with three specialists.

This is what README's first command does (there with five specialists and 12 trials): real
calibration, real sandboxed trials timed from outside, real keep decisions.
"""

from __future__ import annotations

import json

import pytest

from lineage.state import StateDir
from tests.client.conftest import cli


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scripted_search_on_digits_with_three_specialists(tmp_path):
    state = tmp_path / "digits"
    run = cli("run", "--task", "digits-speedrun", "--state", str(state), "--trials", "5",
              "--specialists", "arch,opt,aug", "--calibration-seeds", "3", "--seed", "0",
              "--plot", str(tmp_path / "progress.png"), timeout=560)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "stopped: trial budget" in run.stderr
    sd = StateDir.open(state)
    search = sd.search
    rows = sd.store.list_trials(sd.search_id, include_baseline=False)
    assert [t.exp_id for t in rows] == [1, 2, 3, 4, 5]  # every submission has its row
    assert {t.specialist for t in rows} <= {"arch", "opt", "aug"}
    assert all(t.status.is_finished() for t in rows)
    assert all(len(t.metrics["train_s_per_seed"]) == 3 for t in rows if t.status.is_valid())
    assert search.baseline_n == 3 and search.baseline_spread is not None
    keeps = [t for t in rows if t.status.value == "keep"]
    assert keeps, [(t.exp_id, t.hypothesis, t.status.value, t.score, t.decision) for t in rows]
    assert all(t.delta < -t.margin for t in keeps)  # each keep beat the best by more than the margin
    sd.close()
    report = json.loads(cli("report", "--state", str(state), "--json").stdout)
    assert (report["trials"], report["keeps"]) == (5, len(keeps))
    assert (tmp_path / "progress.png").stat().st_size > 10_000
