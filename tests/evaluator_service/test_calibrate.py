"""Calibration: N runs of the unmodified recipe -> mean, spread, baseline row."""

from __future__ import annotations

import pytest

from evaluator_service.calibrate import calibrate_into, calibrate_on, calibration_specs
from evaluator_service.exceptions import CalibrationError
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.slots import SlotPool
from lineage.models import SearchConfig
from lineage.sql import SqlLineageStore


def test_runs_use_disjoint_seeds(toy):
    task, _ = toy(seeds=2)
    specs = calibration_specs(task, 3)
    assert [(s.seed_offset, s.seeds) for s in specs] == [(0, 2), (2, 2), (4, 2)]


def _calibrate(task, sandbox, tmp_path, runs: int):
    """`runs` calibration runs of `task` on a real local backend (two CPU slots)."""
    backend = LocalBackend(LocalBackendConfig(workdir=tmp_path / "work", data_root=tmp_path / "bdata"),
                           tasks=lambda _n, _p="": task, pool=SlotPool([], cpu_slots=2), sandbox=sandbox)
    try:
        return calibrate_on(backend, task, runs)
    finally:
        backend.close()


def test_calibrate_measures_mean_and_spread(toy, sandbox, tmp_path):
    task, _ = toy()
    cal = _calibrate(task, sandbox, tmp_path, 3)
    assert cal.n == 3 and cal.statuses == ("valid",) * 3
    assert cal.mean == pytest.approx(sum(cal.scores) / 3)
    assert cal.spread is not None and cal.spread >= 0


def test_calibration_keeps_each_runs_metrics(toy, sandbox, tmp_path):
    task, _ = toy()
    cal = _calibrate(task, sandbox, tmp_path, 2)
    assert len(cal.metrics) == 2 and all({"accuracy", "train_s"} <= set(m) for m in cal.metrics)
    assert [m["train_s"] for m in cal.valid_metrics()] == list(cal.scores)  # the toy scores its train time
    assert type(cal).model_validate(cal.model_dump(mode="json")) == cal


def test_calibration_without_a_valid_run_fails(toy, sandbox, tmp_path):
    task, _ = toy("raise SystemExit('nope')\n")
    with pytest.raises(CalibrationError, match="no calibration run"):
        _calibrate(task, sandbox, tmp_path, 2)


def test_calibration_on_a_backend_sets_the_search_baseline(toy, sandbox, tmp_path):
    task, _ = toy()
    cal = _calibrate(task, sandbox, tmp_path, 2)
    store = SqlLineageStore(tmp_path / "lineage.db")
    store.create_search("s", SearchConfig(task="toy"))
    row = calibrate_into(store, "s", cal)
    search = store.get_search("s")
    assert row.exp_id == 0 and row.score == cal.mean
    assert (search.baseline_score, search.baseline_spread, search.baseline_n) == (cal.mean, cal.spread, 2)
    store.close()
