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


def _another(store, score: float, sid="c"):
    exp = store.create_trial(sid, specialist="opt").exp_id
    store.claim_trial(sid, "w", exp_id=exp)
    return store.finish_trial(sid, exp, Outcome(status="valid", score=score))


def test_one_candidate_at_a_time_is_claimed_and_runs_are_recorded_once(store):
    _candidate(store)
    t = _another(store, 7.0)
    assert t.status == TrialStatus.CONFIRMING
    got = store.claim_confirmation("c", "w1")
    assert got.exp_id == t.exp_id and got.worker == "w1"  # the most promising first, not the oldest
    assert store.claim_confirmation("c", "w2") is None  # one is in hand
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


def test_a_worker_that_lost_its_candidate_cannot_decide_it(store):
    """The first worker, presumed dead and handed back, comes back with a verdict: dropped; the
    worker that holds the candidate now decides it."""
    t = _candidate(store)
    store.claim_confirmation("c", "slow")
    store.reconcile("c", lambda w: w != "slow")
    store.claim_confirmation("c", "w2")
    with pytest.raises(TrialStateError, match="no longer held by worker slow"):
        store.finish_confirmation("c", t.exp_id, keep=True, decision="confirmed: ...", summary={}, worker="slow")
    assert store.get_trial("c", t.exp_id).status == TrialStatus.CONFIRMING
    assert store.get_search("c").best_exp_id == 0
    done = store.finish_confirmation("c", t.exp_id, keep=False, decision="not confirmed: ...", summary={}, worker="w2")
    assert done.status == TrialStatus.DISCARD


def test_the_most_promising_candidate_is_confirmed_first_and_a_keep_supersedes_the_rest(store):
    """Candidates that waited while another was confirmed are judged against the new best at
    once: those it leaves within the margin are discarded with no re-run; the others wait."""
    first = _candidate(store, score=9.0)  # beats 10.0 by more than the margin 0.5
    best, close, far = _another(store, 7.0), _another(store, 7.3), _another(store, 6.4)
    assert {t.status for t in (first, best, close, far)} == {TrialStatus.CONFIRMING}
    got = store.claim_confirmation("c", "w")
    assert got.exp_id == far.exp_id  # 6.4: the best score of the four
    store.finish_confirmation("c", far.exp_id, keep=False, decision="not confirmed: ...", summary={"pairs": 3})
    got = store.claim_confirmation("c", "w")
    assert got.exp_id == best.exp_id  # then 7.0
    store.finish_confirmation("c", best.exp_id, keep=True, decision="confirmed: ...", summary={"pairs": 3})
    s = store.get_search("c")
    assert (s.best_exp_id, s.best_score) == (best.exp_id, 7.0)
    for t in (first, close):  # 9.0 is worse than 7.0, 7.3 within the margin of it: both settled now
        row = store.get_trial("c", t.exp_id)
        assert row.status == TrialStatus.DISCARD and row.finished_at is not None, row
        assert row.decision.startswith("superseded: ") and row.best_at_finish == best.exp_id, row.decision
        assert row.metrics["confirmation"] == {"ref_exp": best.exp_id, "pairs": 0, "margin": 0.5}
        assert store.confirmation_runs("c", t.exp_id) == []
    assert store.claim_confirmation("c", "w") is None  # nothing waits any more


def test_a_keep_leaves_a_candidate_that_still_beats_the_new_best_waiting(store):
    first = _candidate(store, score=9.0)
    got = store.claim_confirmation("c", "w")
    arrived = _another(store, 6.0)  # while 9.0 is in hand
    store.finish_confirmation("c", got.exp_id, keep=True, decision="confirmed: ...", summary={})
    assert first.exp_id == got.exp_id
    assert store.get_trial("c", arrived.exp_id).status == TrialStatus.CONFIRMING  # 6.0 beats 9.0 by 3.0 > 0.5
    assert store.claim_confirmation("c", "w").exp_id == arrived.exp_id
    late = _another(store, 5.0)
    store.finish_confirmation("c", arrived.exp_id, keep=False, decision="not confirmed: ...", summary={})
    assert store.get_trial("c", late.exp_id).status == TrialStatus.CONFIRMING  # a discard supersedes nothing
