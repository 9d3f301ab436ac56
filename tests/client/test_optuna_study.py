"""The Optuna proposer's study, rebuilt from lineage rows: statuses, directions, determinism, no repeats."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from client.optuna_agent import (
    ask_point,
    build_study,
    check_sampler,
    distributions,
    format_point,
    make_sampler,
    point_key,
    read_point,
    state_of,
)
from client.run import AgentChoice
from lineage.models import TrialStatus
from tasks.base import parse_tunables

SOURCE = """# --- tunables ---
EPOCHS = 30  # tunable int [1, 60] hint=lower
BATCH = 32  # tunable int [8, 512] log
LR = 0.002  # tunable float [1e-4, 0.05] log
SMOOTH = 0.05  # tunable float [0.0, 0.3]
"""
DISTS = distributions(parse_tunables(SOURCE))
BASE = {"EPOCHS": 30.0, "BATCH": 32.0, "LR": 0.002, "SMOOTH": 0.05}


def _row(exp_id: int, status: str, point: dict | None, score: float | None = None, parent: int = 0) -> dict:
    hyp = format_point("tpe", point) if point is not None else "a free-text idea"
    return {"exp_id": exp_id, "status": status, "score": score, "parent_exp": parent, "hypothesis": hyp}


def _point(i: int) -> dict:
    return {"EPOCHS": 2 + i, "BATCH": 16 * (1 + i % 4), "LR": 0.001 * (1 + i), "SMOOTH": 0.01 * i}


def test_a_point_reads_back_from_its_hypothesis():
    point = {"EPOCHS": 12, "BATCH": 256, "LR": 1.234e-05, "SMOOTH": 0.1}
    text = format_point("tpe", point)
    assert text == "optuna tpe point {EPOCHS=12, BATCH=256, LR=1.234e-05, SMOOTH=0.1}"
    assert read_point(text) == {"EPOCHS": 12.0, "BATCH": 256.0, "LR": 1.234e-05, "SMOOTH": 0.1}
    assert read_point(text[:40]) is None  # a listing that cut it is not misread as a smaller point
    assert read_point("set LR 0.003 -> 0.0045 (x1.50)") is None
    assert read_point("optuna tpe point {LR=fast}") is None


def test_the_space_is_int_where_int_and_log_where_log():
    assert DISTS == {"EPOCHS": IntDistribution(1, 60), "BATCH": IntDistribution(8, 512, log=True),
                     "LR": FloatDistribution(1e-4, 0.05, log=True), "SMOOTH": FloatDistribution(0.0, 0.3)}


def test_every_status_is_told_as_the_issue_says():
    design = {
        "baseline": TrialState.COMPLETE, "keep": TrialState.COMPLETE, "discard": TrialState.COMPLETE,
        "queued": TrialState.RUNNING, "running": TrialState.RUNNING,
        "infra_error": None, "cancelled": None,  # not the idea's fault: not told at all
        "crash": TrialState.PRUNED, "preflight_crash": TrialState.PRUNED, "size_blocked": TrialState.PRUNED,
        "train_budget_overrun": TrialState.PRUNED, "eval_budget_overrun": TrialState.PRUNED,
        "disqualified": TrialState.PRUNED,
    }
    assert {name: state_of(name) for name in design} == design
    for s in TrialStatus:  # a status added later: undecided ones run, finished failures are failures
        if s.value not in design:
            assert state_of(s.value) == (TrialState.PRUNED if s.is_finished() else TrialState.RUNNING), s
    assert state_of("no-such-status") is None


def test_the_study_holds_each_row_that_names_a_point_and_only_scores_as_values():
    rows = [_row(0, "baseline", None, 5.0, parent=None), _row(1, "keep", _point(1), 4.0),
            _row(2, "crash", _point(2)), _row(3, "disqualified", _point(3), 3.0), _row(4, "infra_error", _point(4)),
            _row(5, "running", _point(5)), _row(6, "discard", _point(6), 6.0), _row(7, "keep", None, 1.0),
            _row(8, "discard", {**_point(8), "EPOCHS": 500}, 2.0)]  # outside today's range
    study = build_study(rows, DISTS, lower_is_better=True, sampler=make_sampler("random", 0), baseline=BASE)
    assert [(t.state, t.value) for t in study.trials] == [
        (TrialState.COMPLETE, 5.0), (TrialState.COMPLETE, 4.0), (TrialState.PRUNED, None),
        (TrialState.PRUNED, None), (TrialState.RUNNING, None), (TrialState.COMPLETE, 6.0)]
    assert study.trials[1].params == {"EPOCHS": 3, "BATCH": 32, "LR": 0.002, "SMOOTH": 0.01}
    assert study.best_trial.params == study.trials[1].params  # the disqualified score is never a score
    no_baseline = build_study(rows, DISTS, lower_is_better=True, sampler=make_sampler("random", 0))
    assert len(no_baseline.trials) == 5  # the baseline is told only when its point is known


def test_the_direction_follows_the_metric():
    rows = [_row(1, "keep", _point(1), 4.0), _row(2, "discard", _point(2), 9.0)]
    lower = build_study(rows, DISTS, lower_is_better=True, sampler=make_sampler("tpe", 0))
    higher = build_study(rows, DISTS, lower_is_better=False, sampler=make_sampler("tpe", 0))
    assert (lower.best_value, higher.best_value) == (4.0, 9.0)
    assert higher.direction == optuna.study.StudyDirection.MAXIMIZE


def test_a_seed_and_a_lineage_fix_the_point():
    rows = [_row(i, "discard", _point(i), float(10 - i % 5)) for i in range(1, 15)]

    def ask(seed: int, rows: list[dict]) -> dict:
        study = build_study(rows, DISTS, lower_is_better=True, sampler=make_sampler("tpe", seed), baseline=BASE)
        return ask_point(study, DISTS, set(), seed)

    assert ask(7, rows) == ask(7, rows)  # past the startup trials: TPE proper
    assert ask(7, rows) != ask(8, rows)
    assert ask(7, rows) != ask(7, rows[:-1])


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp"])
def test_a_tried_point_is_never_asked_again(sampler):
    try:
        check_sampler(sampler)
    except ValueError as e:
        pytest.skip(str(e))
    tunables = parse_tunables("W = 2  # tunable int [1, 4]\n")
    dists = distributions(tunables)
    rows = [_row(i, "discard", {"W": w}, float(w)) for i, w in enumerate((1, 2, 4), start=1)]
    tried = {point_key({"W": w}) for w in (1, 2, 4)}
    study = build_study(rows, dists, lower_is_better=True, sampler=make_sampler(sampler, 1))
    assert ask_point(study, dists, tried, seed=1) == {"W": 3}  # the only one left
    study = build_study(rows, dists, lower_is_better=True, sampler=make_sampler(sampler, 1))
    assert ask_point(study, dists, tried | {point_key({"W": 3})}, seed=1) is None  # nothing new to try


def test_asked_floats_are_rounded_to_what_the_recipe_holds_and_stay_in_range():
    study = build_study([], DISTS, lower_is_better=True, sampler=make_sampler("random", 3))
    for _ in range(50):
        point = ask_point(study, DISTS, set(), seed=3)
        assert isinstance(point["EPOCHS"], int) and isinstance(point["LR"], float)
        assert float(f"{point['LR']:.4g}") == point["LR"] and 1e-4 <= point["LR"] <= 0.05
        assert read_point(format_point("random", point)) == point


def test_agent_choice_names_the_sampler_and_refuses_unknown_ones():
    assert (AgentChoice.parse("optuna").kind, AgentChoice.parse("optuna").model) == ("optuna", "optuna:tpe")
    assert AgentChoice.parse("optuna:random").model == "optuna:random"
    with pytest.raises(ValueError, match=r"optuna sampler 'bayes': use one of tpe, random, cmaes, gp"):
        AgentChoice.parse("optuna:bayes")
    with pytest.raises(ValueError, match=r"'optuna\[:SAMPLER\]'"):
        AgentChoice.parse("hyperopt")


def test_a_log_scale_an_optimiser_cannot_take_is_refused_with_the_tunable_named():
    with pytest.raises(ValueError, match=r"tunable N \[0, 8\].*fix its declaration"):
        distributions(parse_tunables("N = 2  # tunable int [0, 8] log\n"))
