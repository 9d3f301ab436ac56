"""LineageStoreContract: the behaviour every lineage store backend must show.

A backend's test module imports these tests and provides a `store` fixture (see
tests/lineage/test_store_contract.py, parametrised over a SQLite file and PostgreSQL).
"""

from __future__ import annotations

import threading

import pydantic
import pytest

from lineage.exceptions import (
    BudgetExhaustedError,
    SearchExistsError,
    SearchNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
    TrialStateError,
)
from lineage.models import LOG_TAIL_CHARS, NoiseMargin, Outcome, SearchConfig, SessionRecord, TrialStatus
from lineage.tables import utcnow

CFG = SearchConfig(task="toy", score_field="time_s", roster=("arch", "opt", "reg"))


def _finish(store, sid, exp, score, status="valid", **kw):
    assert store.claim_trial(sid, "w", exp_id=exp) is not None
    return store.finish_trial(sid, exp, Outcome(status=status, score=score, **kw))


def test_create_and_get_search(store):
    created = store.create_search("s1", CFG)
    assert created.config == CFG and created.next_exp_id == 1
    assert store.get_search("s1").config.roster == ("arch", "opt", "reg")
    with pytest.raises(SearchExistsError):
        store.create_search("s1", CFG)
    with pytest.raises(SearchNotFoundError):
        store.get_search("nope")
    assert [s.id for s in store.list_searches()] == ["s1"]


def test_exp_ids_are_assigned_at_submission_in_order(store):
    store.create_search("s", CFG)
    ids = [store.create_trial("s", specialist="opt").exp_id for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert store.get_trial("s", 3).status == TrialStatus.QUEUED
    assert store.get_search("s").next_exp_id == 6


def test_exp_ids_are_per_search(store):
    store.create_search("a", CFG)
    store.create_search("b", CFG)
    assert store.create_trial("a", specialist="x").exp_id == 1
    assert store.create_trial("b", specialist="x").exp_id == 1
    assert store.create_trial("a", specialist="x").exp_id == 2


def test_claim_is_fifo_and_won_once(store):
    store.create_search("s", CFG)
    for _ in range(3):
        store.create_trial("s", specialist="opt")
    first = store.claim_trial("s", "w1")
    assert (first.exp_id, first.status, first.worker, first.attempts) == (1, TrialStatus.RUNNING, "w1", 1)
    assert store.claim_trial("s", "w2", exp_id=1) is None
    assert store.claim_trial("s", "w2").exp_id == 2
    assert store.claim_trial("s", "w3", exp_id=3).exp_id == 3
    assert store.claim_trial("s", "w4") is None


def test_concurrent_claims_each_trial_won_by_exactly_one_worker(store):
    store.create_search("s", CFG)
    for _ in range(40):
        store.create_trial("s", specialist="opt")
    won: list[tuple[str, int]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (t := store.claim_trial("s", name)) is not None:
            with lock:
                won.append((name, t.exp_id))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(e for _, e in won) == list(range(1, 41))
    running = store.list_trials("s", statuses=["running"])
    assert {(t.worker, t.exp_id) for t in running} == set(won)


def test_baseline_row_zero_becomes_best(store):
    store.create_search("s", CFG)
    base = store.set_baseline("s", 26.0, spread=0.2, n=5, note="cold")
    assert (base.exp_id, base.status, base.score) == (0, TrialStatus.BASELINE, 26.0)
    search = store.get_search("s")
    assert (search.best_exp_id, search.best_score, search.baseline_spread, search.baseline_n) == (0, 26.0, 0.2, 5)
    store.set_baseline("s", 25.0, spread=0.1, n=3)  # recalibrating before any finish is fine
    assert store.get_trial("s", 0).score == 25.0
    exp = store.create_trial("s", specialist="opt").exp_id
    _finish(store, "s", exp, 30.0)
    with pytest.raises(TrialStateError):
        store.set_baseline("s", 1.0)


def test_keep_rule_with_absolute_margin(store):
    store.create_search("s", CFG.model_copy(update={"margin": NoiseMargin(abs_delta=0.5)}))
    store.set_baseline("s", 10.0)
    e1 = store.create_trial("s", specialist="opt").exp_id
    e2 = store.create_trial("s", specialist="opt").exp_id
    e3 = store.create_trial("s", specialist="opt").exp_id
    noise = _finish(store, "s", e1, 9.7)
    assert noise.status == TrialStatus.DISCARD and "within noise" in noise.decision
    assert noise.margin == 0.5 and noise.delta == pytest.approx(-0.3)
    worse = _finish(store, "s", e2, 10.2)
    assert worse.status == TrialStatus.DISCARD and worse.decision.startswith("worse")
    kept = _finish(store, "s", e3, 9.0)
    assert kept.status == TrialStatus.KEEP and kept.best_at_finish == 0
    assert store.get_search("s").best_exp_id == e3


def test_keep_rule_with_spread_multiple_and_higher_is_better(store):
    cfg = CFG.model_copy(update={"lower_is_better": False, "margin": NoiseMargin(abs_delta=0.01, sigmas=2.0)})
    store.create_search("s", cfg)
    store.set_baseline("s", 0.50, spread=0.02)  # effective margin = max(0.01, 2 * 0.02) = 0.04
    e1, e2 = (store.create_trial("s", specialist="arch").exp_id for _ in range(2))
    small = _finish(store, "s", e1, 0.53)
    assert small.status == TrialStatus.DISCARD and small.margin == pytest.approx(0.04)
    big = _finish(store, "s", e2, 0.55)
    assert big.status == TrialStatus.KEEP and big.delta == pytest.approx(0.05)


def test_first_valid_trial_without_baseline_is_kept(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    assert _finish(store, "s", exp, 3.0).status == TrialStatus.KEEP


def test_failure_statuses_pass_through_and_do_not_move_the_best(store):
    store.create_search("s", CFG)
    store.set_baseline("s", 10.0)
    for status in ("crash", "disqualified", "size_blocked", "train_budget_overrun", "infra_error"):
        exp = store.create_trial("s", specialist="opt").exp_id
        row = _finish(store, "s", exp, 1.0, status=status, failure="boom")
        assert row.status == TrialStatus(status) and row.failure == "boom"
    assert store.get_search("s").best_exp_id == 0


def test_valid_without_score_becomes_crash(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    row = _finish(store, "s", exp, float("nan"))
    assert row.status == TrialStatus.CRASH and "no finite score" in row.failure


def test_finished_rows_are_immutable(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="opt").exp_id
    _finish(store, "s", exp, 1.0)
    with pytest.raises(TrialFinishedError):
        store.finish_trial("s", exp, Outcome(status="crash"))
    with pytest.raises(TrialFinishedError):
        store.cancel_trial("s", exp, "late")
    with pytest.raises(TrialStateError):
        store.finish_trial("s", store.create_trial("s", specialist="x").exp_id, Outcome(status="keep"))
    with pytest.raises(TrialNotFoundError):
        store.finish_trial("s", 99, Outcome(status="crash"))
    with pytest.raises(pydantic.ValidationError):
        store.get_trial("s", exp).score = 0.0  # readers get frozen models


def test_outcome_fields_are_recorded(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="reg", hypothesis="h", parent_exp=0, expected_delta=-0.5,
                             notes="n", snapshot="abc", seeds=3).exp_id
    row = _finish(store, "s", exp, 2.5, metrics={"accuracy": 0.97}, timings={"train": 1.5},
                  artifact_bytes=1234, self_reported=False, unisolated=True)
    assert (row.metrics, row.timings, row.artifact_bytes, row.unisolated) == ({"accuracy": 0.97}, {"train": 1.5}, 1234, True)
    assert (row.hypothesis, row.parent_exp, row.expected_delta, row.snapshot, row.seeds) == ("h", 0, -0.5, "abc", 3)
    assert row.finished_at is not None and row.started_at is not None


def test_the_log_tail_is_kept_to_its_end(store):
    store.create_search("s", CFG)
    short, long = (store.create_trial("s", specialist="opt").exp_id for _ in range(2))
    assert _finish(store, "s", short, None, status="crash", log_tail="Traceback\nValueError: x").log_tail == (
        "Traceback\nValueError: x")
    tail = "start of the log\n" + "x" * LOG_TAIL_CHARS + "\nRuntimeError: the last line"
    row = _finish(store, "s", long, None, status="crash", log_tail=tail)
    assert row.log_tail == tail[-LOG_TAIL_CHARS:] and row.log_tail.endswith("RuntimeError: the last line")
    assert store.get_trial("s", long).log_tail == row.log_tail


def test_an_outcome_with_an_unknown_field_cannot_be_made():
    with pytest.raises(pydantic.ValidationError, match="scroe"):
        Outcome(status="valid", scroe=1.0)


def test_cancel_queued_and_running(store):
    store.create_search("s", CFG)
    a, b = (store.create_trial("s", specialist="x").exp_id for _ in range(2))
    store.claim_trial("s", "w", exp_id=b)
    assert store.cancel_trial("s", a, "stop requested").status == TrialStatus.CANCELLED
    assert store.cancel_trial("s", b, "stop requested").failure == "stop requested"


def test_reconcile_requeues_then_marks_infra_error(store):
    store.create_search("s", CFG)
    dead, alive = (store.create_trial("s", specialist="x").exp_id for _ in range(2))
    store.claim_trial("s", "dead-worker", exp_id=dead)
    store.claim_trial("s", "live-worker", exp_id=alive)
    is_alive = lambda w: w == "live-worker"  # noqa: E731
    changed = store.reconcile("s", is_alive, max_attempts=2)
    assert [(t.exp_id, t.status) for t in changed] == [(dead, TrialStatus.QUEUED)]
    assert "re-queued" in store.get_trial("s", dead).notes
    assert store.get_trial("s", alive).status == TrialStatus.RUNNING
    store.claim_trial("s", "dead-worker", exp_id=dead)
    (final,) = store.reconcile("s", is_alive, max_attempts=2)
    assert final.status == TrialStatus.INFRA_ERROR and "vanished" in final.failure
    assert store.count_trials("s") == {"infra_error": 1, "running": 1}


def test_a_run_the_infrastructure_lost_is_requeued_while_attempts_remain(store):
    store.create_search("s", CFG)
    exp = store.create_trial("s", specialist="x").exp_id
    lost = Outcome(status="infra_error", failure="slurm job 7 ended PREEMPTED", retry=True)
    store.claim_trial("s", "w1", exp_id=exp)
    again = store.finish_trial("s", exp, lost, max_attempts=2)
    assert again.status == TrialStatus.QUEUED and again.worker is None
    assert "re-queued: the infrastructure lost attempt 1 (slurm job 7 ended PREEMPTED)" in again.notes
    assert store.claim_trial("s", "w2").exp_id == exp
    final = store.finish_trial("s", exp, lost, max_attempts=2)  # the second attempt was the last
    assert final.status == TrialStatus.INFRA_ERROR and final.failure == "slurm job 7 ended PREEMPTED"
    assert store.count_trials("s") == {"infra_error": 1}
    # without `retry` an infra_error is final at once
    other = store.create_trial("s", specialist="x").exp_id
    store.claim_trial("s", "w1", exp_id=other)
    assert store.finish_trial("s", other, Outcome(status="infra_error", failure="x")).status == TrialStatus.INFRA_ERROR


def test_list_count_and_paging(store):
    store.create_search("s", CFG)
    for i in range(6):
        exp = store.create_trial("s", specialist=("arch", "opt")[i % 2], parent_exp=0 if i < 4 else 1).exp_id
        if i < 3:
            _finish(store, "s", exp, 10.0 - i)
    assert [t.exp_id for t in store.list_trials("s", specialists=["opt"])] == [2, 4, 6]
    assert [t.exp_id for t in store.list_trials("s", newest_first=True, limit=2)] == [6, 5]
    assert [t.exp_id for t in store.list_trials("s", offset=2, limit=2)] == [3, 4]
    assert [t.exp_id for t in store.list_trials("s", parent_exp=1)] == [5, 6]
    assert [t.exp_id for t in store.list_trials("s", statuses=["queued"])] == [4, 5, 6]
    assert store.count_trials("s") == {"keep": 3, "queued": 3}


def test_leaderboard_and_ancestry(store):
    store.create_search("s", CFG)
    store.set_baseline("s", 10.0)
    e1 = store.create_trial("s", specialist="a", parent_exp=0).exp_id
    _finish(store, "s", e1, 9.0)
    e2 = store.create_trial("s", specialist="b", parent_exp=e1).exp_id
    _finish(store, "s", e2, 8.0)
    e3 = store.create_trial("s", specialist="c", parent_exp=e1).exp_id
    _finish(store, "s", e3, 8.5)  # worse than the best (8.0): discard
    assert [t.exp_id for t in store.leaderboard("s")] == [e2, e1, 0]
    assert [t.exp_id for t in store.ancestry("s", e2)] == [0, e1, e2]
    assert store.ancestry_ids("s", e3) == [0, e1, e3]
    assert [t.exp_id for t in store.get_trials("s", [e3, 99, 0])] == [e3, 0]
    assert (store.count("s"), store.count("s", parent_exp=e1), store.count("s", specialist="a")) == (3, 2, 1)
    assert store.count("s", status="keep") == 2


def test_events_and_sessions_roundtrip(store):
    store.create_search("s", CFG)
    store.record_event("s", "submit", specialist="opt", exp_id=1, payload={"k": [1, 2]})
    store.record_event("s", "finish", exp_id=1)
    events = store.list_events("s")
    assert [(e.kind, e.specialist, e.payload) for e in events] == [("submit", "opt", {"k": [1, 2]}), ("finish", None, {})]
    assert store.list_events("s", after_id=events[0].id)[0].kind == "finish"
    rec = store.record_session(SessionRecord(search_id="s", specialist="opt", model="m", started_at=utcnow()))
    done = store.record_session(rec.model_copy(update={"tokens_in": 10, "cache_read": 5, "cost_usd": 0.01, "exp_id": 1}))
    assert done.id == rec.id
    (only,) = store.list_sessions("s")
    assert (only.tokens_in, only.cache_read, only.cost_usd, only.exp_id) == (10, 5, 0.01, 1)


def test_import_trials_continues_ids(store):
    store.create_search("s", CFG)
    now = utcnow()
    rows = [
        {"exp_id": 0, "specialist": "baseline", "status": "baseline", "score": 5.0, "created_at": now},
        {"exp_id": 7, "specialist": "opt", "status": "keep", "score": 4.0, "parent_exp": 0, "created_at": now},
    ]
    assert store.import_trials("s", rows, best_exp_id=7, best_score=4.0, baseline_score=5.0) == 2
    assert store.create_trial("s", specialist="x").exp_id == 8
    with pytest.raises(TrialStateError):
        store.import_trials("s", rows, best_exp_id=7, best_score=4.0)


def test_trial_budget_is_never_exceeded(store):
    store.create_search("s", CFG.model_copy(update={"max_trials": 3}))
    a, b, c = (store.create_trial("s", specialist="x").exp_id for _ in range(3))
    with pytest.raises(BudgetExhaustedError):
        store.create_trial("s", specialist="x")
    store.cancel_trial("s", c, "stopped")  # cancelled and infra_error trials give their slot back
    assert store.create_trial("s", specialist="x").exp_id == 4
    store.update_search_config("s", CFG.model_copy(update={"max_trials": 5}))
    assert store.create_trial("s", specialist="x").exp_id == 5


def test_concurrent_submissions_respect_the_budget(store):
    store.create_search("s", CFG.model_copy(update={"max_trials": 10}))
    made, refused = [], []

    def submit() -> None:
        for _ in range(5):
            try:
                made.append(store.create_trial("s", specialist="x").exp_id)
            except BudgetExhaustedError:
                refused.append(1)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(made) == list(range(1, 11)) and len(refused) == 20
