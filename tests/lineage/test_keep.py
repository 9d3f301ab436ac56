"""The keep rule and the confirmation test are pure functions: checked on their own."""

from __future__ import annotations

import random

from lineage.keep import confirm, decide, superseded


def test_keep_needs_more_than_the_margin():
    assert decide(8.0, 10.0, 0, 1.0, lower_is_better=True).keep
    assert not decide(9.5, 10.0, 0, 1.0, lower_is_better=True).keep
    assert decide(0.9, 0.8, 3, 0.05, lower_is_better=False).keep



def test_a_waiting_candidate_is_superseded_only_once_the_new_best_leaves_it_within_the_margin():
    """Candidate 8.0 waits; a keep at 7.5 (margin 1) leaves it within noise: discarded, no re-runs.
    A keep at 9.5 leaves it still better by more than the margin: it waits on (None)."""
    decision, summary = superseded(8.0, 7.5, 12, 1.0, lower_is_better=True)  # type: ignore[misc]
    assert decision.startswith("superseded: worse than exp 012 by 0.5")
    assert summary == {"ref_exp": 12, "pairs": 0, "margin": 1.0}
    assert superseded(8.0, 9.5, 12, 1.0, lower_is_better=True) is None
    assert superseded(0.91, 0.90, 3, 0.05, lower_is_better=False)[0].startswith("superseded: within noise")  # type: ignore[index]

def test_a_clear_paired_improvement_is_confirmed():
    best = [10.0, 10.3, 9.8, 10.1, 10.2]
    cand = [b - 2.0 + d for b, d in zip(best, (0.1, -0.1, 0.05, 0.0, -0.05))]
    d = confirm(cand, best, margin=0.5, lower_is_better=True, best_exp=4)
    assert d.keep and d.pairs == 5 and abs(d.mean - 2.0) < 1e-9 and d.lower > 1.8
    assert d.decision.startswith("confirmed: paired improvement 2 over exp 004 in 5 interleaved runs, 95% lower bound")


def test_noise_is_not_confirmed_even_when_its_mean_crosses_the_margin():
    rng = random.Random(1)
    best = [10 + rng.gauss(0, 1) for _ in range(3)]
    cand = [9.3 + rng.gauss(0, 1) for _ in range(3)]
    d = confirm(cand, best, margin=0.5, lower_is_better=True)
    assert not d.keep and d.decision.startswith("not confirmed")


def test_direction_and_too_few_pairs():
    assert confirm([0.91, 0.92, 0.915], [0.80, 0.81, 0.805], 0.05, lower_is_better=False).keep
    assert not confirm([0.5, 0.6], [0.9, 0.91], 0.05, lower_is_better=False).keep  # worse
    one = confirm([1.0], [5.0], 0.1, lower_is_better=True)
    assert not one.keep and one.lower is None and "1 complete paired run" in one.decision


def test_pure_noise_is_rarely_confirmed_at_the_default_level():
    """Over many candidates drawn from pure noise, at most a few percent pass (level 0.05)."""
    rng = random.Random(7)
    passed = sum(confirm([rng.gauss(10, 1) for _ in range(5)], [rng.gauss(10, 1) for _ in range(5)],
                         margin=0.0, lower_is_better=True).keep for _ in range(2000))
    assert passed / 2000 < 0.07
