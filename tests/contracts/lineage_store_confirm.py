"""The confirmation part of the lineage store contract (imported by the backends' test module)."""

from __future__ import annotations

import pytest

from lineage.exceptions import TrialFinishedError, TrialStateError
from lineage.models import ConfirmationRun, NoiseMargin, Outcome, SearchConfig, TrialStatus

CONFIRMED = SearchConfig(task="toy", score_field="time_s", roster=("opt",), confirm_runs=3,
                         margin=NoiseMargin(abs_delta=0.5))


def _candidate(store, sid="c", score=8.0):
    store.create_search(sid, CONFIRMED)
    store.set_baseline(sid, 10.0, 0.2, 5)
    exp = store.create_trial(sid, specialist="opt").exp_id
    assert store.claim_trial(sid, "w", exp_id=exp) is not None
    return store.finish_trial(sid, exp, Outcome(status="valid", score=score))


def test_a_candidate_keep_waits_for_confirmation_and_the_best_stays(store):
    t = _candidate(store)
    assert t.status == TrialStatus.CONFIRMING and t.finished_at is None
    assert "candidate" in t.decision and "3 paired runs" in t.decision
    s = store.get_search("c")
    assert (s.best_exp_id, s.best_score) == (0, 10.0)
    with pytest.raises(TrialStateError, match="being confirmed"):
        store.finish_trial("c", t.exp_id, Outcome(status="valid", score=1.0))
    worse = store.create_trial("c", specialist="opt").exp_id  # a worse trial is discarded at once
    store.claim_trial("c", "w", exp_id=worse)
    assert store.finish_trial("c", worse, Outcome(status="valid", score=11.0)).status == TrialStatus.DISCARD


def test_one_candidate_at_a_time_is_claimed_and_runs_are_recorded_once(store):
    t = _candidate(store)
    second = store.create_trial("c", specialist="opt").exp_id
    store.claim_trial("c", "w", exp_id=second)
    assert store.finish_trial("c", second, Outcome(status="valid", score=7.0)).status == TrialStatus.CONFIRMING
    got = store.claim_confirmation("c", "w1")
    assert got.exp_id == t.exp_id and got.worker == "w1"
    assert store.claim_confirmation("c", "w2") is None  # the first is in hand
    run = ConfirmationRun(exp_id=t.exp_id, ref_exp=0, idx=0, arm="candidate", seed=1000, status="valid", score=8.1)
    store.record_confirmation_run("c", run)
    store.record_confirmation_run("c", run.model_copy(update={"score": 99.0}))  # a replay keeps the first
    assert [r.score for r in store.confirmation_runs("c", t.exp_id)] == [8.1]


def test_finish_confirmation_keeps_or_discards_with_its_record(store):
    t = _candidate(store)
    store.claim_confirmation("c", "w")
    kept = store.finish_confirmation("c", t.exp_id, keep=True, decision="confirmed: ...",
                                     summary={"pairs": 3, "lower": 1.2})
    assert kept.status == TrialStatus.KEEP and kept.metrics["confirmation"]["lower"] == 1.2
    assert store.get_search("c").best_exp_id == t.exp_id
    with pytest.raises(TrialFinishedError):
        store.finish_confirmation("c", t.exp_id, keep=False, decision="again", summary={})
    other = store.create_trial("c", specialist="opt").exp_id
    store.claim_trial("c", "w", exp_id=other)
    assert store.finish_trial("c", other, Outcome(status="valid", score=6.0)).status == TrialStatus.CONFIRMING
    store.claim_confirmation("c", "w")
    dropped = store.finish_confirmation("c", other, keep=False, decision="not confirmed: ...", summary={})
    assert dropped.status == TrialStatus.DISCARD and store.get_search("c").best_exp_id == t.exp_id


def test_a_candidate_whose_worker_died_is_handed_back_with_its_runs(store):
    t = _candidate(store)
    store.claim_confirmation("c", "dead-worker")
    store.record_confirmation_run("c", ConfirmationRun(exp_id=t.exp_id, ref_exp=0, idx=0, arm="candidate",
                                                       seed=1000, status="valid", score=8.0))
    released = store.reconcile("c", lambda w: w != "dead-worker")
    assert [r.exp_id for r in released] == [t.exp_id]
    again = store.claim_confirmation("c", "w2")
    assert again.exp_id == t.exp_id and "confirmation resumed" in again.notes
    assert len(store.confirmation_runs("c", t.exp_id)) == 1
    assert store.cancel_trial("c", t.exp_id, "deadline").status == TrialStatus.CANCELLED
