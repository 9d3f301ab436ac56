"""Calibration runs at most as many runs at once as the search will run trials (`--slots`).

Runs that share the cores measure slower and spread wider than runs alone, so a calibration
at two runs at once followed by a search at one trial at a time would set the noise margin
from load the trials never meet. The recipe (quicktask's CLOCK) writes when each run began
and ended; real sandboxes on the local backend.
"""

from __future__ import annotations

import os

import pytest

from servers.app.init import calibrate_baseline
from tests.client.quicktask.task import CLOCK


def _intervals(tmp_path, slots: int) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    base = calibrate_baseline(CLOCK, tmp_path / f"state{slots}", 3, slots=slots)
    assert base.n == 3, base
    assert base.calibration is not None
    return sorted(tuple(m["stamps"]) for m in base.calibration.metrics)  # type: ignore[misc]


def _overlaps(spans: list[tuple[float, float]]) -> bool:
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


@pytest.mark.timeout(300)
def test_one_slot_calibrates_one_run_at_a_time(tmp_path):
    spans = _intervals(tmp_path, 1)
    assert len(spans) == 3 and all(end - begin >= 1.5 for begin, end in spans)
    assert not _overlaps(spans), spans


@pytest.mark.timeout(300)
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two runs at once need two cores")
def test_two_slots_calibrate_two_runs_at_once(tmp_path):
    """The same measurement sees overlap when it is allowed, so the test above can fail."""
    assert _overlaps(_intervals(tmp_path, 2))
