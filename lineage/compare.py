"""Comparing searches: arms of the paper, repeated searches, a search against a published run.

Per search: trials, keeps, best, improvement over the baseline (positive = better, in metric
units and in % of the baseline), trials to reach the final best, and the status mix. Searches
with the same task, arm and lineage setting form a group (repeated searches); a group of two or
more gets the mean of each figure with a 95% percentile bootstrap interval (the searches
resampled with replacement, `RESAMPLES` times, a fixed seed: the same input gives the same
interval). Curves are best-so-far per trial; a group's curve is their median with the band
between the 25th and 75th percentiles, over the searches that reached that trial. When the
searches do not share one metric (task, metric name, direction), curves are in % improvement
over each search's own baseline, so a search and a published run of another scale compare.
`versus` sets each group against a control group: the difference of the means, with an interval
from resampling both groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lineage.live import LiveSearch, LiveState
from lineage.state import StateDir

RESAMPLES = 10_000
LEVEL = 0.95
GRID = 200  # points of a group's curve
FIGURES = ("trials", "keeps", "best", "improvement", "improvement_pct", "trials_to_best")


def _counts(st: LiveState) -> dict[str, int]:
    n = np.bincount(st.columns.status, minlength=len(st.statuses)) if len(st.columns) else []
    out = {name: int(c) for name, c in zip(st.statuses, n) if c}
    for p in st.pending:
        out[p.status] = out.get(p.status, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def group_name(st: LiveState) -> str:
    c = st.search.config
    return f"{c.task_label} · {c.arm}" + ("" if c.lineage else " · lineage off")


def curve(st: LiveState) -> dict[str, list[float]]:
    """The best-so-far as steps: x = trial (exp id), y = the best after it; ends at the last trial."""
    cols, k = st.columns, st.code("keep")
    mask = cols.status == k
    order = np.argsort(cols.exp[mask], kind="stable")
    last = max([int(cols.exp.max()) if len(cols) else 0, *(p.exp_id for p in st.pending)])
    base = st.search.baseline_score
    xs = [0, *cols.exp[mask][order].tolist()]
    ys = [base, *cols.score[mask][order].tolist()]
    if base is None:  # no baseline: the curve starts at the first keep
        xs, ys = xs[1:], ys[1:]
    if xs and last > xs[-1]:
        xs.append(last)
        ys.append(ys[-1])
    return {"x": [float(x) for x in xs], "y": [float(y) for y in ys]}


def search_figures(st: LiveState, label: str) -> dict[str, Any]:
    s, c = st.search, st.search.config
    counts = _counts(st)
    trials = sum(counts.values())
    sign = 1.0 if c.lower_is_better else -1.0
    gain = None if s.best_score is None or s.baseline_score is None else (s.baseline_score - s.best_score) * sign
    pct = None if gain is None or not s.baseline_score else 100.0 * gain / abs(s.baseline_score)
    to_best = None
    if s.best_exp_id is not None:
        to_best = int((st.columns.exp <= s.best_exp_id).sum()) + sum(p.exp_id <= s.best_exp_id for p in st.pending)
    return {
        "label": label, "search": s.id, "task": c.task_label, "arm": c.arm, "lineage": c.lineage,
        "group": group_name(st), "metric": c.score_field, "unit": c.metric_unit, "lower_is_better": c.lower_is_better,
        "trials": trials, "keeps": counts.get("keep", 0), "best": s.best_score, "best_exp": s.best_exp_id,
        "baseline": s.baseline_score, "improvement": gain, "improvement_pct": pct, "trials_to_best": to_best,
        "status_counts": counts, "status_mix": {k: v / trials for k, v in counts.items()} if trials else {},
        "curve": curve(st),
    }


def bootstrap(values: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
              seed: int = 0) -> dict[str, Any]:
    """Mean of `values` with a percentile bootstrap interval (None bounds for fewer than 2 values)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    if len(v) < 2:
        return {"mean": float(v[0]), "lo": None, "hi": None, "n": 1}
    means = _resampled_means(v, np.random.default_rng(seed), resamples)
    a = (1 - level) / 2
    return {"mean": float(v.mean()), "lo": float(np.quantile(means, a)), "hi": float(np.quantile(means, 1 - a)),
            "n": int(len(v))}


def _resampled_means(v: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """The means of `resamples` resamples of `v` with replacement."""
    return v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)


def bootstrap_difference(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
                         seed: int = 0) -> dict[str, Any]:
    """mean(a) - mean(b) of two independent groups, with a percentile bootstrap interval (each
    group resampled with replacement on its own); None bounds when either has fewer than 2 values."""
    va = np.asarray([x for x in a if x is not None], dtype=float)
    vb = np.asarray([x for x in b if x is not None], dtype=float)
    if not len(va) or not len(vb):
        return {"mean": None, "lo": None, "hi": None, "n": (int(len(va)), int(len(vb)))}
    diff = float(va.mean() - vb.mean())
    if len(va) < 2 or len(vb) < 2:
        return {"mean": diff, "lo": None, "hi": None, "n": (int(len(va)), int(len(vb)))}
    rng = np.random.default_rng(seed)
    d, q = _resampled_means(va, rng, resamples) - _resampled_means(vb, rng, resamples), (1 - level) / 2
    return {"mean": diff, "lo": float(np.quantile(d, q)), "hi": float(np.quantile(d, 1 - q)),
            "n": (int(len(va)), int(len(vb)))}


def versus(result: dict[str, Any], control: str,
           figures: Sequence[str] = ("improvement_pct", "best")) -> list[dict[str, Any]]:
    """Each other group of a comparison against the `control` group: the difference of the mean
    of each figure (group minus control) with its bootstrap interval. [] when there is no such group."""
    rows = result["searches"]
    if control not in {r["group"] for r in rows}:
        return []
    out = []
    for name in dict.fromkeys(r["group"] for r in rows):
        if name == control:
            continue
        out.append({"group": name, "control": control, "figures": {
            f: bootstrap_difference([r[f] for r in rows if r["group"] == name],
                                    [r[f] for r in rows if r["group"] == control]) for f in figures}})
    return out


def _percent(f: dict[str, Any]) -> dict[str, list[float]]:
    """A curve in % improvement over the search's baseline (positive = better)."""
    base, sign = f["baseline"], 1.0 if f["lower_is_better"] else -1.0
    ys = [100.0 * (base - y) * sign / abs(base) for y in f["curve"]["y"]] if base else []
    return {"x": f["curve"]["x"] if base else [], "y": ys}


def _step_at(c: dict[str, list[float]], grid: np.ndarray) -> np.ndarray:
    """The step curve's value at each grid point (NaN before it starts and after the search ended)."""
    x, y = np.asarray(c["x"]), np.asarray(c["y"])
    if not len(x):
        return np.full(len(grid), np.nan)
    i = np.searchsorted(x, grid, side="right") - 1
    out = np.where(i >= 0, y[np.clip(i, 0, None)], np.nan)
    return np.where(grid > x[-1], np.nan, out)


def group_curve(curves: list[dict[str, list[float]]]) -> dict[str, list[Any]]:
    """Median and 25-75% band of step curves on a common grid of trials."""
    end = max((c["x"][-1] for c in curves if c["x"]), default=0.0)
    grid = np.unique(np.round(np.linspace(0.0, end, GRID)))
    table = np.vstack([_step_at(c, grid) for c in curves])
    seen = (~np.isnan(table)).any(axis=0)
    grid, table = grid[seen], table[:, seen]
    with np.errstate(all="ignore"):
        med, lo, hi = (np.nanquantile(table, p, axis=0) for p in (0.5, 0.25, 0.75))
    return {"x": grid.tolist(), "median": med.tolist(), "lo": lo.tolist(), "hi": hi.tolist(),
            "n": (~np.isnan(table)).sum(axis=0).tolist()}


def compare_states(states: Sequence[LiveState], labels: Sequence[str] | None = None,
                   groups: Sequence[str] | None = None) -> dict[str, Any]:
    """The comparison of these searches (see the module docstring); JSON-able. `groups` names
    each search's group where the configuration cannot (say, one roster driven by two proposers)."""
    labels = list(labels or [st.search.id for st in states])
    rows = [search_figures(st, label) for st, label in zip(states, labels)]
    for row, group in zip(rows, groups or ()):
        row["group"] = group
    same = len({(r["task"], r["metric"], r["lower_is_better"]) for r in rows}) <= 1
    for r in rows:
        r["plot"] = r["curve"] if same else _percent(r)
    groups = []
    for name in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == name]
        mix = {k: float(np.mean([m["status_mix"].get(k, 0.0) for m in members]))
               for k in dict.fromkeys(k for m in members for k in m["status_mix"])}
        groups.append({"name": name, "n": len(members), "members": [m["label"] for m in members],
                       "figures": {f: bootstrap([m[f] for m in members]) for f in FIGURES},
                       "status_mix": mix, "curve": group_curve([m["plot"] for m in members])})
    first = rows[0] if rows else {}
    return {"units": "metric" if same else "percent", "metric": first.get("metric") if same else "improvement %",
            "lower_is_better": first.get("lower_is_better", True) if same else False,
            "searches": rows, "groups": groups, "bootstrap": {"resamples": RESAMPLES, "level": LEVEL}}


def compare_dirs(paths: Sequence[Path], groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Open each state directory, compare them, close them (raises `LineageError` for a bad one)."""
    opened: list[StateDir] = []
    try:
        for p in paths:
            opened.append(StateDir.open(p))
        states = [LiveSearch(sd.store, sd.search_id, min_interval=0).state() for sd in opened]
        return compare_states(states, _labels(paths, [sd.search_id for sd in opened]), groups)
    finally:
        for sd in opened:
            sd.close()


def _labels(paths: Sequence[Path], ids: list[str]) -> list[str]:
    """Search ids, or the directories' names where two searches share an id."""
    if len(set(ids)) == len(ids):
        return ids
    return [f"{Path(p).parent.name}/{Path(p).name}" for p in paths]
