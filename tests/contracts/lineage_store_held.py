"""LineageStoreContract, held rows: heartbeats, stale rows of other hosts, late finishers.

A worker on another host is alive to `is_alive` (it cannot see that host's processes); only
its heartbeat says it is gone. These tests run on every store backend (see
tests/lineage/test_store_contract.py).
"""

from __future__ import annotations

import time

import pytest

from lineage.exceptions import TrialStateError
from lineage.models import Outcome, SearchConfig, TrialStatus

CFG = SearchConfig(task="toy", roster=("opt",), confirm_runs=0)
ELSEWHERE = "other-host:4242:1"
ALIVE = lambda worker: True  # noqa: E731 - every worker on another host looks alive from here


def test_a_row_of_a_host_that_stopped_heartbeating_is_requeued_once(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    assert store.claim_trial("s", ELSEWHERE).exp_id == exp
    assert store.reconcile("s", ALIVE, stale_s=60) == []  # fresh: left alone
    time.sleep(0.3)
    moved = store.reconcile("s", ALIVE, stale_s=0.2)
    assert [t.exp_id for t in moved] == [exp]
    row = store.get_trial("s", exp)
    assert row.status == TrialStatus.QUEUED and row.worker is None
    assert f"worker {ELSEWHERE} stopped heartbeating" in row.notes and "re-queued" in row.notes
    assert store.reconcile("s", ALIVE, stale_s=0.2) == []  # counted once


def test_a_heartbeat_keeps_a_row_held(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    store.claim_trial("s", ELSEWHERE)
    for _ in range(3):
        time.sleep(0.2)
        assert store.heartbeat("s", exp, ELSEWHERE)
        assert store.reconcile("s", ALIVE, stale_s=0.5) == []
    assert not store.heartbeat("s", exp, "someone-else:1:1")
    assert store.get_trial("s", exp).status == TrialStatus.RUNNING


def test_a_late_worker_cannot_finish_a_row_another_worker_reran(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    store.claim_trial("s", ELSEWHERE)
    time.sleep(0.3)
    store.reconcile("s", ALIVE, stale_s=0.2)
    with pytest.raises(TrialStateError, match="no longer held by worker"):  # re-queued, not yet claimed
        store.finish_trial("s", exp, Outcome(status="valid", score=1.0), worker=ELSEWHERE)
    assert store.claim_trial("s", "new-host:1:1").exp_id == exp
    assert not store.heartbeat("s", exp, ELSEWHERE)
    with pytest.raises(TrialStateError, match="no longer held by worker"):
        store.finish_trial("s", exp, Outcome(status="valid", score=1.0), worker=ELSEWHERE)
    done = store.finish_trial("s", exp, Outcome(status="valid", score=2.0), worker="new-host:1:1")
    assert (done.status, done.score, done.attempts) == (TrialStatus.KEEP, 2.0, 2)


def test_a_stale_row_past_its_attempts_is_an_infra_error(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    store.claim_trial("s", ELSEWHERE)
    time.sleep(0.3)
    store.reconcile("s", ALIVE, max_attempts=1, stale_s=0.2)
    row = store.get_trial("s", exp)
    assert row.status == TrialStatus.INFRA_ERROR and "not retried (attempt limit 1)" in row.failure


def test_claims_can_be_limited_to_some_searches(store):
    for sid in ("a", "b", "c"):
        store.create_search(sid, CFG)
    first_c = store.create_trial("c", specialist="opt")
    store.create_trial("a", specialist="opt")
    store.create_trial("b", specialist="opt")
    assert store.claim_trial(None, "w", searches=[]) is None
    got = store.claim_trial(None, "w", searches=["a", "c"])
    assert (got.search_id, got.exp_id) == ("c", first_c.exp_id)  # oldest submission first
    assert store.claim_trial(None, "w", searches=["a", "c"]).search_id == "a"
    assert store.claim_trial(None, "w", searches=["a", "c"]) is None
    assert store.get_trial("b", 1).status == TrialStatus.QUEUED
