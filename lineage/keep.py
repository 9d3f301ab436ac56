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
