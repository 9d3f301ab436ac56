"""What the main page shows, as JSON-able dicts built from a `LiveState` (plain code, no web).

`summary` is the page's one data endpoint: the header, the best-so-far series, the leaderboard,
the best's ancestry, the specialists, status counts over time and outcomes by specialist. Its
size does not grow with the search: series are the keeps only, counts are aggregated with
numpy over the state's columns, lists are capped. Every trial as a point comes from `points`,
in pages, so a browser holding 100,000 points fetches only the new ones.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from lineage import _live_sql as q
from lineage.live import LiveState, Pending
from lineage.models import BUDGET_EXEMPT, TrialStatus
from lineage.sql import SqlLineageStore

COLOURS = {
    "baseline": "#5b6770", "keep": "#1b9e4b", "discard": "#9aa5b1", "crash": "#d1495b",
    "preflight_crash": "#ef8a62", "size_blocked": "#8e6c8a", "train_budget_overrun": "#e6a100",
    "eval_budget_overrun": "#c77c02", "disqualified": "#3a6ea5", "cancelled": "#b8b8b8",
    "infra_error": "#a23b72", "queued": "#66a3d2", "running": "#00a6c7", "confirming": "#7fb800",
}
VALID = ("keep", "discard")
FAILURES = tuple(s.value for s in TrialStatus if s.is_finished() and not s.is_valid())
TEXT = 200  # characters of a hypothesis in a table
BINS = 40
RECENT_OUTCOMES = 24
POINTS_PAGE = 20_000


def clean(x: Any) -> Any:
    """A float JSON can carry (NaN and infinities become None)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _short(text: str | None, n: int = TEXT) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def status_counts(st: LiveState) -> dict[str, int]:
    """Trials by status (finished and pending; the baseline row not counted)."""
    n = np.bincount(st.columns.status, minlength=len(st.statuses)) if len(st.columns) else []
    out = {name: int(c) for name, c in zip(st.statuses, n) if c}
    for p in st.pending:
        out[p.status] = out.get(p.status, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def header(st: LiveState) -> dict[str, Any]:
    s, c = st.search, st.search.config
    counts = status_counts(st)
    trials = sum(counts.values())
    run = st.run
    state = "imported" if c.arm == "imported" else (
        "stopped" if run.ended else "stopping" if run.stop_reason else "running" if run.started else "idle")
    return {
        "search": s.id, "task": c.task_label, "profile": c.profile, "metric": c.score_field, "unit": c.metric_unit,
        "lower_is_better": c.lower_is_better, "arm": c.arm, "lineage": c.lineage, "roster": list(c.roster),
        "trials": trials, "used": trials - sum(counts.get(x, 0) for x in BUDGET_EXEMPT), "budget": c.max_trials,
        "best_exp": s.best_exp_id, "best": clean(s.best_score), "baseline": clean(s.baseline_score),
        "spread": clean(s.baseline_spread), "baseline_n": s.baseline_n,
        "margin": c.margin.effective(s.baseline_spread), "margin_rule": c.margin.model_dump(),
        "spend_usd": round(st.spend_usd(), 4), "state": state, "stop_reason": run.stop_reason,
        "paused": dict(run.paused), "created": s.created_at.timestamp(), "last_event": run.last_event,
        "status_counts": counts, "inflight": len(st.pending),
        "calibrated": dict(c.calibrated_env), "backend": c.backend,
    }


def best_series(st: LiveState, t0: float | None = None) -> dict[str, list[Any]]:
    """The official best over trials and over time: the baseline (at `t0`, when it was measured),
    then each keep, in exp order."""
    cols, k = st.columns, st.code("keep")
    mask = cols.status == k
    order = np.argsort(cols.exp[mask], kind="stable")
    exp = [0, *cols.exp[mask][order].tolist()]
    score = [clean(st.search.baseline_score), *(clean(x) for x in cols.score[mask][order].tolist())]
    t = [t0 or st.search.created_at.timestamp(), *(clean(x) for x in cols.finished[mask][order].tolist())]
    return {"exp": exp, "score": score, "t": t}


def timeline(st: LiveState, bins: int = BINS) -> dict[str, Any]:
    """Finished trials per status in `bins` equal spans of finish time."""
    cols = st.columns
    ok = ~np.isnan(cols.finished)
    if not ok.any():
        return {"edges": [], "counts": {}}
    t, codes = cols.finished[ok], cols.status[ok]
    lo, hi = float(t.min()), float(t.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts = {}
    for code in np.unique(codes).tolist():
        h, _ = np.histogram(t[codes == code], bins=edges)
        counts[st.statuses[code]] = h.tolist()
    return {"edges": edges.tolist(), "counts": counts}


def by_specialist(st: LiveState) -> dict[str, dict[str, int]]:
    """{specialist: {status: n}} over finished trials (one bincount)."""
    cols, ns = st.columns, len(st.statuses)
    if not len(cols):
        return {}
    grid = np.bincount(cols.specialist.astype(np.int64) * ns + cols.status, minlength=len(st.specialists) * ns)
    grid = grid.reshape(len(st.specialists), ns)
    return {spec: {st.statuses[j]: int(n) for j, n in enumerate(row) if n} for spec, row in zip(st.specialists, grid)}


def recent_outcomes(st: LiveState, spec: str, n: int = RECENT_OUTCOMES) -> list[list[Any]]:
    """[exp, status] of the specialist's last `n` finished trials, oldest first."""
    if spec not in st.specialists:
        return []
    idx = np.flatnonzero(st.columns.specialist == st.specialists.index(spec))[-n:]
    return [[int(e), st.statuses[c]] for e, c in zip(st.columns.exp[idx].tolist(), st.columns.status[idx].tolist())]


def _inflight(p: Pending, queued_ahead: int | None, now: float) -> dict[str, Any]:
    since = p.started if p.status != "queued" and p.started else p.created
    return {"exp": p.exp_id, "specialist": p.specialist, "status": p.status, "worker": p.worker,
            "attempts": p.attempts, "queue": queued_ahead, "age_s": None if since is None else max(0.0, now - since)}


def inflight(st: LiveState, limit: int = 100) -> list[dict[str, Any]]:
    """Unfinished trials; queued ones with how many queued trials are ahead (claims go in exp order)."""
    now, ahead, out = time.time(), 0, []
    for p in st.pending:
        out.append(_inflight(p, ahead if p.status == "queued" else None, now))
        ahead += p.status == "queued"
    return out[:limit]


def specialists(st: LiveState) -> list[dict[str, Any]]:
    names = list(dict.fromkeys([*st.search.config.roster, *st.specialists]))
    counts, flights, now = by_specialist(st), inflight(st, limit=10_000), time.time()
    out = []
    for name in names:
        mine = counts.get(name, {})
        open_ = [s for s in st.open_sessions if s.specialist == name]
        tally = st.sessions.get(name)
        last = st.run.activity.get(name)
        out.append({
            "name": name, "trials": sum(mine.values()) + sum(f["specialist"] == name for f in flights),
            "keeps": mine.get("keep", 0), "failures": {k: v for k, v in mine.items() if k in FAILURES},
            "spend_usd": round((tally.cost_usd if tally else 0.0) + sum(s.cost_usd for s in open_), 4),
            "sessions": (tally.sessions if tally else 0) + len(open_),
            "session": None if not open_ else {"model": open_[-1].model, "tool_calls": open_[-1].tool_calls,
                                               "age_s": None if open_[-1].started is None else now - open_[-1].started},
            "paused": st.run.paused.get(name), "inflight": [f for f in flights if f["specialist"] == name][:10],
            "last": None if last is None else {"kind": last[0], "exp": last[1], "age_s": None if last[2] is None else now - last[2]},
            "recent": recent_outcomes(st, name),
        })
    return out


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {"exp": r["exp_id"], "specialist": r["specialist"], "status": r["status"], "score": clean(r["score"]),
            "delta": clean(r["delta"]), "hypothesis": _short(r["hypothesis"]), "parent": r["parent_exp"]}


def panels(conn: Any, st: LiveState) -> dict[str, Any]:
    """The panels read from the lineage (one read transaction): leaderboard, the best's
    ancestry with each node's number of children, the newest trials, the baseline's time."""
    s = st.search
    chain = q.ancestry(conn, s.id, s.best_exp_id) if s.best_exp_id is not None else []
    counts = q.child_counts(conn, s.id, [r["exp_id"] for r in chain])
    return {"leaderboard": [_row(r) for r in q.leaderboard(conn, s.id, s.config.lower_is_better, 15)],
            "tree": [{**_row(r), "children": counts.get(r["exp_id"], 0)} for r in chain],
            "recent": q.recent(conn, s.id, 12), "t0": q.baseline_time(conn, s.id)}


def children(store: SqlLineageStore, search_id: str, exp: int, offset: int, limit: int) -> dict[str, Any]:
    """One page of a node's children, each with its own number of children."""
    rows = q.read(store, lambda c: q.children(c, search_id, exp, offset, limit + 1))
    more, rows = len(rows) > limit, rows[:limit]
    counts = q.read(store, lambda c: q.child_counts(c, search_id, [r["exp_id"] for r in rows]))
    return {"parent": exp, "offset": offset, "more": more, "children": [
        {"exp": r["exp_id"], "specialist": r["specialist"], "status": r["status"], "score": clean(r["score"]),
         "hypothesis": _short(r["hypothesis"]), "children": counts.get(r["exp_id"], 0)} for r in rows]}


def summary(store: SqlLineageStore, st: LiveState) -> dict[str, Any]:
    """Everything the main page shows but the points (see the module docstring)."""
    p = q.read(store, lambda conn: panels(conn, st))
    return {
        "version": st.version, "epoch": st.epoch, "header": header(st), "colours": COLOURS,
        "best_series": best_series(st, p["t0"]), "leaderboard": p["leaderboard"], "tree": p["tree"],
        "specialists": specialists(st), "inflight": inflight(st),
        "recent": [{"exp": r["exp_id"], "specialist": r["specialist"], "status": r["status"],
                    "score": clean(r["score"]), "delta": clean(r["delta"]), "hypothesis": _short(r["hypothesis"]),
                    "note": _short(r["failure"] or r["decision"], 160), "finished": clean(r["finished"])}
                   for r in p["recent"]],
        "timeline": timeline(st), "by_specialist": by_specialist(st), "points": {"total": len(st.columns)},
    }


def points(st: LiveState, start: int, limit: int = POINTS_PAGE) -> dict[str, Any]:
    """Finished trials `start`..`start+limit` in the order they finished (an append-only list:
    a client keeps `next` and asks for what came after). Scores and times NaN-free."""
    cols = st.columns
    start = max(0, min(start, len(cols)))
    end = min(len(cols), start + max(1, limit))
    sl = slice(start, end)
    score, fin = cols.score[sl], cols.finished[sl]
    return {
        "epoch": st.epoch, "start": start, "next": end, "total": len(cols),
        "statuses": list(st.statuses), "specialists": list(st.specialists),
        "exp": cols.exp[sl].tolist(), "status": cols.status[sl].tolist(), "specialist": cols.specialist[sl].tolist(),
        "score": np.where(np.isnan(score), None, score).tolist(),
        "t": np.where(np.isnan(fin), None, fin).tolist(),
    }
