"""A search's summary figures (`autoresearch report`) and its best-so-far plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from lineage._engine import run_tx
from lineage._report_interval import improvement_interval
from lineage._render_tree import max_exp_id
from lineage.models import Search, TrialStatus
from lineage.sql import SqlLineageStore
from lineage.tables import TrialRow

_VALID = [s.value for s in TrialStatus if s.is_valid()]


def search_report(store: SqlLineageStore, search_id: str) -> dict[str, Any]:
    """One JSON-able object of a search's figures.

    `trials` counts submitted trials (the baseline row 000 excluded); `status_counts` covers
    exactly those trials, so its values sum to `trials`; the baseline is reported on its own.
    """
    search = store.get_search(search_id)
    counts = store.count_trials(search_id)
    status_counts = {k: counts[k] for k in sorted(counts, key=lambda k: (-counts[k], k)) if k != "baseline"}
    best = store.get_trial(search_id, search.best_exp_id) if search.best_exp_id is not None else None
    baseline = next(iter(store.get_trials(search_id, [0])), None)
    margin = search.config.margin
    return {
        "search_id": search.id, "task": search.config.task, "profile": search.config.profile,
        "calibrated_env": dict(search.config.calibrated_env), "arm": search.config.arm,
        "lineage": search.config.lineage, "trials": sum(status_counts.values()), "status_counts": status_counts,
        "keeps": counts.get(TrialStatus.KEEP.value, 0),
        "best": None if best is None else {
            "exp_id": best.exp_id, "score": best.score if best.score is not None else search.best_score,
            "specialist": best.specialist, "hypothesis": best.hypothesis, "decision": best.decision,
        },
        "confirmation": confirmation_figures(store, search_id),
        "baseline": None if search.baseline_score is None else {
            "score": search.baseline_score, "spread": search.baseline_spread, "n": search.baseline_n,
        },
        "score_field": search.config.score_field, "metric_unit": search.config.metric_unit,
        "lower_is_better": search.config.lower_is_better,
        "margin": margin.effective(search.baseline_spread),
        "margin_rule": {"abs_delta": margin.abs_delta, "sigmas": margin.sigmas},
        "spread": search.baseline_spread,
        "improvement": improvement_interval(search, baseline, best),
    }


def confirmation_figures(store: SqlLineageStore, search_id: str) -> dict[str, Any]:
    """How candidate keeps fared: K and the level, how many were confirmed or not, and the
    evaluator seconds their re-runs took (they count toward machine time, not the trial budget)."""
    config = store.get_search(search_id).config
    stmt = select(TrialRow.status, TrialRow.metrics).where(
        TrialRow.search_id == search_id, col(TrialRow.status).in_(["keep", "discard", "confirming"]))
    rows = run_tx(store.engine, lambda s: list(s.exec(stmt)), write=False)
    checked = [(st, m["confirmation"]) for st, m in rows if isinstance(m, dict) and "confirmation" in m]
    return {
        "runs_per_candidate": config.confirm_runs, "level": config.confirm_level,
        "confirmed": sum(st == "keep" for st, _ in checked), "not_confirmed": sum(st == "discard" for st, _ in checked),
        "waiting": sum(st == "confirming" for st, _ in rows),
        "seconds": round(sum(float(c.get("seconds") or 0.0) for _, c in checked), 3),
    }


def valid_points(store: SqlLineageStore, search_id: str) -> list[tuple[int, float, str]]:
    """(exp_id, score, status) of every scored valid row (baseline, keep, discard), in exp order."""
    stmt = (select(TrialRow.exp_id, TrialRow.score, TrialRow.status).where(
        TrialRow.search_id == search_id, col(TrialRow.status).in_(_VALID), col(TrialRow.score).is_not(None))
        .order_by(TrialRow.exp_id))
    return run_tx(store.engine, lambda s: [(int(e), float(v), str(st)) for e, v, st in s.exec(stmt)], write=False)


def best_so_far(points: list[tuple[int, float, str]], last: int) -> tuple[list[int], list[float]]:
    """The official best (baseline, then each keep) as a step series up to trial `last`."""
    xs: list[int] = []
    ys: list[float] = []
    for exp, score, status in points:
        if status in ("baseline", "keep"):
            xs.append(exp)
            ys.append(score)
    if xs and last > xs[-1]:
        xs.append(last)
        ys.append(ys[-1])
    return xs, ys


def plot_best_so_far(store: SqlLineageStore, search_id: str, path: Path) -> Path:
    """Write a PNG: valid trials as points, keeps highlighted, the best-so-far as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    search: Search = store.get_search(search_id)
    points = valid_points(store, search_id)
    xs, ys = best_so_far(points, max_exp_id(store, search_id))
    c = search.config
    unit = f" ({c.metric_unit})" if c.metric_unit else ""
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    try:
        others = [(e, v) for e, v, st in points if st == "discard"]
        keeps = [(e, v) for e, v, st in points if st in ("keep", "baseline")]
        if others:
            ax.scatter(*zip(*others, strict=True), s=14, color="#9aa5b1", label="valid, not kept")
        if keeps:
            ax.scatter(*zip(*keeps, strict=True), s=46, color="#d1495b", zorder=3, label="keep / baseline")
        if xs:
            ax.step(xs, ys, where="post", color="#00798c", linewidth=2, label="best so far")
        direction = "lower is better" if c.lower_is_better else "higher is better"
        ax.set_title(f"{c.task}: best-so-far {c.score_field} ({direction})")
        ax.set_xlabel("trial (exp id)")
        ax.set_ylabel(f"{c.score_field}{unit}")
        ax.grid(alpha=0.3)
        if points:
            ax.legend(loc="best")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
