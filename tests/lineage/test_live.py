"""`LiveSearch`: the incremental read model behind the dashboard and `compare`, on a SQLite file."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lineage.live import LiveSearch
from lineage.models import Outcome, SearchConfig, SessionRecord
from lineage.state import StateDir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sd(tmp_path: Path):  # type: ignore[no-untyped-def]
    state = StateDir.create(tmp_path / "s", SearchConfig(task="t", roster=("a", "b")))
    state.store.set_baseline(state.search_id, 10.0, 0.5, 3)
    yield state
    state.close()


def _finish(sd: StateDir, spec: str, score: float | None, status: str = "valid") -> int:
    t = sd.store.create_trial(sd.search_id, specialist=spec, parent_exp=0)
    sd.store.claim_trial(sd.search_id, "w", exp_id=t.exp_id)
    sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status=status, score=score))
    return t.exp_id


def test_the_version_moves_exactly_when_the_lineage_does(sd: StateDir) -> None:
    live = LiveSearch(sd.store, sd.search_id, min_interval=0)
    first = live.state()
    assert live.state().version == first.version  # nothing new: same version
    _finish(sd, "a", 9.0)
    second = live.state()
    assert second.version == first.version + 1 and second.columns.exp.tolist() == [1]
    assert second.search.best_exp_id == 1 and live.state().version == second.version


def test_a_trial_is_pending_until_it_finishes_then_joins_the_columns(sd: StateDir) -> None:
    live = LiveSearch(sd.store, sd.search_id, min_interval=0)
    t = sd.store.create_trial(sd.search_id, specialist="b", parent_exp=0)
    queued = live.state()
    sd.store.claim_trial(sd.search_id, "worker-1", exp_id=t.exp_id)
    running = live.state()
    sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status="crash", score=None))
    done = live.state()
    assert [(p.exp_id, p.status) for p in queued.pending] == [(1, "queued")] and len(queued.columns) == 0
    assert [(p.status, p.worker) for p in running.pending] == [("running", "worker-1")]
    assert running.version == queued.version + 1
    assert done.pending == () and done.statuses[done.columns.status[0]] == "crash"
    assert np.isnan(done.columns.score[0]) and not np.isnan(done.columns.finished[0])


def test_state_is_reused_within_the_interval(sd: StateDir) -> None:
    live = LiveSearch(sd.store, sd.search_id, min_interval=60)
    first = live.state()
    _finish(sd, "a", 9.0)
    assert live.state() is first  # many viewers polling at once cost one refresh


def test_first_read_pages_through_the_search(sd: StateDir) -> None:
    for i in range(7):
        _finish(sd, "ab"[i % 2], 10.0 - i / 100)
    st = LiveSearch(sd.store, sd.search_id, min_interval=0, page=2).state()
    assert sorted(st.columns.exp.tolist()) == list(range(1, 8))
    assert [st.specialists[c] for c in st.columns.specialist[:2]] == ["a", "b"]


def test_sessions_add_up_once_they_end_and_events_give_the_runs_state(sd: StateDir) -> None:
    live = LiveSearch(sd.store, sd.search_id, min_interval=0)
    rec = sd.store.record_session(SessionRecord(search_id=sd.search_id, specialist="a", model="m",
                                                started_at=datetime.now(UTC), cost_usd=0.25))
    sd.store.record_event(sd.search_id, "run_start")
    sd.store.record_event(sd.search_id, "stop_requested", payload={"reason": "deadline"})
    open_ = live.state()
    sd.store.record_session(rec.model_copy(update={"ended_at": datetime.now(UTC), "cost_usd": 1.5, "tool_calls": 7}))
    sd.store.record_event(sd.search_id, "run_end", specialist=None)
    ended = live.state()
    assert [s.id for s in open_.open_sessions] == [rec.id] and open_.spend_usd() == 0.25
    assert (open_.run.stop_reason, open_.run.ended) == ("deadline", False)
    assert ended.open_sessions == () and ended.sessions["a"].tool_calls == 7 and ended.spend_usd() == 1.5
    assert ended.run.ended and ended.run.stop_reason == "deadline"


@pytest.mark.timeout(60)
def test_trials_written_by_another_process_are_all_read(sd: StateDir) -> None:
    live = LiveSearch(sd.store, sd.search_id, min_interval=0)
    live.state()
    subprocess.run([sys.executable, "-m", "tests.lineage._writer", sd.store.url, sd.search_id, "x", "12"],
                   cwd=REPO, check=True, capture_output=True, timeout=50)
    st = live.state()
    assert sorted(st.columns.exp.tolist()) == list(range(1, 13)) and st.pending == ()
    order = np.argsort(st.columns.exp)
    assert st.columns.score[order].tolist() == [1000.0 - i for i in range(12)]  # as the writer scored them
