"""How sure is the best's improvement over the baseline? An interval for `autoresearch report`.

The baseline's uncertainty comes from its calibration runs (their scores are in the baseline
row's `metrics["scores"]`); the best's from its per-seed figures where the task records them
(`metrics["<score field>_per_seed"]`, a list or a {seed: value} map). With both, the interval
is a percentile bootstrap of the difference of means (runs and seeds resampled independently,
`RESAMPLES` times, a fixed seed). With the best's single score only, its noise is taken to be
one calibration run's (the same recipe family measured the same way), and the interval is
normal: difference ± z·√(s²/n + s²). Without two calibration runs there is no interval, and
the reason says so. Improvement is signed so that positive is better, in metric units and in
% of the baseline.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from lineage.models import Search, Trial

RESAMPLES = 10_000
LEVEL = 0.95


def _numbers(value: Any) -> list[float]:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    out = []
    for x in items:
        if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
            out.append(float(x))
    return out


def _none(why: str, **known: Any) -> dict[str, Any]:
    return {"improvement": known.get("improvement"), "improvement_pct": known.get("improvement_pct"),
            "lo": None, "hi": None, "lo_pct": None, "hi_pct": None, "level": LEVEL, "method": "none", "why": why,
            "n_baseline": known.get("n_baseline", 0), "n_best": known.get("n_best", 0)}


def improvement_interval(search: Search, baseline: Trial | None, best: Trial | None) -> dict[str, Any]:
    """The best's improvement over the baseline with a `LEVEL` interval (see the module docstring)."""
    c = search.config
    if best is None or search.best_score is None or search.baseline_score is None:
        return _none("the search has no best or no baseline yet")
    sign = 1.0 if c.lower_is_better else -1.0
    base_mean = search.baseline_score
    gain = (base_mean - search.best_score) * sign
    known = {"improvement": gain, "improvement_pct": 100.0 * gain / abs(base_mean) if base_mean else None}
    if best.exp_id == 0:
        return _none("the best is still the baseline", **known)
    runs = _numbers((baseline.metrics if baseline else {}).get("scores"))
    seeds = _numbers(best.metrics.get(f"{c.score_field}_per_seed"))
    known |= {"n_baseline": len(runs), "n_best": len(seeds) or 1}
    if len(runs) < 2:
        return _none("fewer than 2 calibration runs recorded for the baseline (imported searches keep none; "
                     "`autoresearch calibrate` measures them before the first trial finishes)", **known)
    if len(seeds) >= 2:
        lo, hi = _bootstrap(np.asarray(runs), np.asarray(seeds), sign)
        method = "bootstrap: calibration runs x the best's seeds"
    else:
        s = float(np.std(runs, ddof=1))
        half = NormalDist().inv_cdf(0.5 + LEVEL / 2) * math.sqrt(s * s / len(runs) + s * s)
        lo, hi = gain - half, gain + half
        method = "normal: the best's noise taken as one calibration run's"
    pct = (lambda x: 100.0 * x / abs(base_mean)) if base_mean else (lambda x: None)
    return {**known, "lo": lo, "hi": hi, "lo_pct": pct(lo), "hi_pct": pct(hi), "level": LEVEL, "method": method,
            "why": "", "n_baseline": len(runs), "n_best": len(seeds) or 1}


def _bootstrap(runs: np.ndarray, seeds: np.ndarray, sign: float) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    base = runs[rng.integers(0, len(runs), size=(RESAMPLES, len(runs)))].mean(axis=1)
    best = seeds[rng.integers(0, len(seeds), size=(RESAMPLES, len(seeds)))].mean(axis=1)
    diff = (base - best) * sign
    a = (1 - LEVEL) / 2
    return float(np.quantile(diff, a)), float(np.quantile(diff, 1 - a))
