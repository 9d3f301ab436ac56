"""One trial's page as a template context (plain code): what it tried, what it got, what changed.

Metrics are shown flat (nested dicts one level deep as `key.sub`), with `metrics["env"]` (GPU,
driver, torch, peak memory) in a table of its own; timings per phase with the wall clock beside
`<phase>_cpu`. Diffs against the parent and against the best are bounded by the snapshot
store (`DIFF_LINES`, `DIFF_BYTES`) and highlighted by `_diff`. The log tail is the row's (the
evaluator's outcome keeps the end of the failing phase's output; older rows may hold one in
`metrics["log_tail"]`), else the trial's events' messages.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from lineage import _live_sql as q
from lineage.exceptions import SnapshotError
from lineage.models import Search, Trial
from lineage.snapshots import SnapshotStore
from lineage.sql import SqlLineageStore
from servers.dashboard._diff import to_html
from servers.dashboard.views import COLOURS, clean

DIFF_LINES = 600
DIFF_BYTES = 60_000
VALUE_CHARS = 300
MAX_METRICS = 200
LOG_CHARS = 8_000


def _short_floats(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, list):
        return [_short_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: _short_floats(x) for k, x in v.items()}
    return v


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    text = v if isinstance(v, str) else json.dumps(_short_floats(v), default=str)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, shown value) of every metric but `env` and `log_tail`, nested dicts one level flat."""
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        if key in ("env", "log_tail"):
            continue
        if isinstance(value, dict) and value and all(not isinstance(v, dict | list) for v in value.values()):
            rows += [(f"{key}.{k}", _value(v)) for k, v in value.items()]
        else:
            rows.append((key, _value(value)))
    return rows[:MAX_METRICS]


def env_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    env = metrics.get("env")
    if not isinstance(env, dict):
        return []
    rows = []
    for key, value in env.items():
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):  # e.g. one dict per GPU
            rows += [(f"{key}[{i}]", ", ".join(f"{k}={_value(v)}" for k, v in x.items())) for i, x in enumerate(value)]
        else:
            rows.append((key, _value(value)))
    return rows[:MAX_METRICS]


def timing_rows(timings: dict[str, float]) -> list[tuple[str, str, str]]:
    """(phase, wall seconds, CPU seconds) per phase; `<phase>_cpu` keys fill the CPU column."""
    phases = [k for k in timings if not k.endswith("_cpu")]
    phases += [k[:-4] for k in timings if k.endswith("_cpu") and k[:-4] not in timings]
    return [(p, _secs(timings.get(p)), _secs(timings.get(f"{p}_cpu"))) for p in phases]


def _secs(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f} s"


def _diff(snaps: SnapshotStore, a: Trial | None, b: Trial, label: str) -> dict[str, Any]:
    if a is None:
        return {"label": label, "html": "", "why": "no such trial", "files": [], "truncated": False}
    if not a.snapshot or not b.snapshot:
        missing = a if not a.snapshot else b
        return {"label": label, "html": "", "files": [], "truncated": False,
                "why": f"exp {missing.exp_id:03d} has no stored files (rows imported from a release keep none)"}
    try:
        d = snaps.diff(a.snapshot, b.snapshot, max_lines=DIFF_LINES, max_bytes=DIFF_BYTES)
    except SnapshotError as exc:
        return {"label": label, "html": "", "why": str(exc), "files": [], "truncated": False}
    why = "" if d.files_changed else "no file differs"
    return {"label": label, "html": to_html(d.text), "why": why, "files": d.files_changed[:200],
            "truncated": d.truncated}


def _get(store: SqlLineageStore, sid: str, exp: int | None) -> Trial | None:
    if exp is None:
        return None
    found = store.get_trials(sid, [exp])
    return found[0] if found else None


def _events(store: SqlLineageStore, sid: str, exp: int) -> list[dict[str, Any]]:
    rows = q.read(store, lambda c: q.trial_events(c, sid, exp))
    return [{"ts": _when(ts), "kind": kind, "specialist": spec or "",
             "text": _value(payload) if payload else ""} for ts, kind, spec, payload in rows]


def log_tail(t: Trial, events: list[dict[str, Any]]) -> str:
    tail = t.log_tail or t.metrics.get("log_tail")
    if isinstance(tail, str) and tail:
        return tail[-LOG_CHARS:]
    texts = [e["text"] for e in events if e["kind"] not in ("submit", "rebase") and e["text"]]
    return "\n".join(texts)[-LOG_CHARS:]


def _when(ts: datetime | None) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S")


def trial_context(store: SqlLineageStore, snaps: SnapshotStore, search: Search, exp: int) -> dict[str, Any]:
    """Everything the trial page shows (raises `TrialNotFoundError` for an unknown exp)."""
    t = store.get_trial(search.id, exp)
    parent, best = _get(store, search.id, t.parent_exp), _get(store, search.id, search.best_exp_id)
    kids = q.read(store, lambda c: q.children(c, search.id, exp, 0, 51))
    events = _events(store, search.id, exp)
    vs_parent = None if parent is None or parent.score is None or t.score is None else t.score - parent.score
    diffs = [_diff(snaps, parent, t, f"against its parent exp {t.parent_exp:03d}")] if parent else []
    if best is not None and best.exp_id not in (t.exp_id, t.parent_exp):
        diffs.append(_diff(snaps, best, t, f"against the best exp {best.exp_id:03d}"))
    return {
        "t": t, "search": search, "config": search.config, "parent": parent, "best": best,
        "colour": COLOURS.get(t.status.value, "#444"), "colours": COLOURS, "finished": t.status.is_finished(),
        "expected": clean(t.expected_delta), "actual": clean(t.delta), "vs_parent": clean(vs_parent),
        "metrics": metric_rows(t.metrics), "env": env_rows(t.metrics), "timings": timing_rows(t.timings),
        "events": events, "log_tail": log_tail(t, events), "diffs": diffs,
        "children": kids[:50], "more_children": len(kids) > 50,
        "times": {"created": _when(t.created_at), "started": _when(t.started_at), "finished": _when(t.finished_at)},
    }
