"""The keep rule with a noise margin (a pure function, so it is tested on its own)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeepDecision:
    keep: bool
    delta: float | None  # score - best (metric units, signed); None when there is no best
    margin: float
    decision: str  # the note views show: improved / within noise / worse


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def decide(
    score: float, best: float | None, best_exp: int | None, margin: float, lower_is_better: bool
) -> KeepDecision:
    """Keep iff `score` beats `best` by more than `margin` in the metric's direction."""
    if best is None:
        return KeepDecision(True, None, margin, "first valid trial: becomes the best")
    delta = score - best
    improvement = -delta if lower_is_better else delta
    ref = f"exp {best_exp:03d}" if best_exp is not None else "the best"
    if improvement > margin:
        note = f"improved on {ref} by {_fmt(improvement)} (margin {_fmt(margin)})"
        return KeepDecision(True, delta, margin, note)
    if improvement > 0:
        note = f"within noise: better than {ref} by {_fmt(improvement)} <= margin {_fmt(margin)}"
        return KeepDecision(False, delta, margin, note)
    if improvement == 0:
        return KeepDecision(False, delta, margin, f"tied with {ref}")
    return KeepDecision(False, delta, margin, f"worse than {ref} by {_fmt(-improvement)}")


def superseded(score: float, best: float, best_exp: int, margin: float,
               lower_is_better: bool) -> tuple[str, dict[str, float | int]] | None:
    """A waiting candidate the new best `best_exp` has left within `margin`: the decision and the
    confirmation summary that discard it without re-runs. None while it still beats the best by
    more than the margin (it is then confirmed against that best)."""
    d = decide(score, best, best_exp, margin, lower_is_better)
    if d.keep:
        return None
    return f"superseded: {d.decision}", {"ref_exp": best_exp, "pairs": 0, "margin": margin}


@dataclass(frozen=True)
class ConfirmDecision:
    keep: bool
    pairs: int
    mean: float | None  # mean paired improvement (positive = better), metric units
    lower: float | None  # one-sided lower confidence bound of the mean improvement
    level: float
    decision: str


def confirm(candidate: list[float], best: list[float], margin: float, lower_is_better: bool,
            level: float = 0.05, *, best_exp: int | None = None) -> ConfirmDecision:
    """Keep iff the paired improvement of `candidate` over `best` exceeds `margin` significantly.

    Run i of each list used the same seed. The test is one-sided at `level`: the lower bound of
    a Student-t interval of the mean paired improvement must exceed `margin` (the minimum
    effect). Fewer than two complete pairs confirm nothing.
    """
    from scipy.stats import t as student_t

    diffs = [(b - c) if lower_is_better else (c - b) for c, b in zip(candidate, best)]
    ref = f"exp {best_exp:03d}" if best_exp is not None else "the best"
    n = len(diffs)
    if n < 2:
        return ConfirmDecision(False, n, None, None, level, f"not confirmed: {n} complete paired run(s) against {ref}")
    mean = sum(diffs) / n
    sd = (sum((d - mean) ** 2 for d in diffs) / (n - 1)) ** 0.5
    lower = mean - float(student_t.ppf(1 - level, n - 1)) * sd / n ** 0.5
    pct = f"{100 * (1 - level):g}%"
    stats = (f"paired improvement {_fmt(mean)} over {ref} in {n} interleaved runs, {pct} lower bound "
             f"{_fmt(lower)}")
    if lower > margin:
        return ConfirmDecision(True, n, mean, lower, level, f"confirmed: {stats} > margin {_fmt(margin)}")
    return ConfirmDecision(False, n, mean, lower, level, f"not confirmed: {stats} <= margin {_fmt(margin)}")
