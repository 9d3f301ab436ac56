"""The live view of a search (rich): trials done, best so far, in-flight trials, spend.

It reads only the lineage store (plus the supervisor's in-memory progress when it runs in
the same process), so `autoresearch status` shows the same view for a search running
elsewhere: there, why the run stops and which specialists it paused come from its events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lineage.models import IN_FLIGHT, TrialStatus

_COLOURS = {"keep": "green", "discard": "yellow", "running": "cyan", "queued": "blue", "confirming": "magenta",
            "baseline": "white", "cancelled": "dim", "infra_error": "magenta"}


def _age(ts: datetime | None) -> str:
    if ts is None:
        return ""
    s = (datetime.now(UTC) - ts).total_seconds()
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m"


def _score(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


@dataclass
class RunLog:
    """The latest run of a search as its events tell it; `update` reads only new events."""

    after: int = 0
    stop_reason: str = ""
    ended: bool = False
    paused: dict[str, str] = field(default_factory=dict)  # specialist -> why

    def update(self, store: Any, search_id: str, page: int = 500) -> RunLog:
        while True:
            events = store.list_events(search_id, after_id=self.after, limit=page)
            for e in events:
                self._apply(e.kind, e.specialist, e.payload)
                self.after = e.id
            if len(events) < page:
                return self

    def _apply(self, kind: str, specialist: str | None, payload: dict[str, Any]) -> None:
        if kind == "run_start":
            self.stop_reason, self.ended, self.paused = "", False, {}
        elif kind == "stop_requested":
            self.stop_reason = str(payload.get("reason", ""))
        elif kind == "specialist_paused" and specialist:
            self.paused[specialist] = str(payload.get("reason", ""))
        elif kind == "run_end":
            self.ended = True


def snapshot(store: Any, search_id: str, progress: Any = None, log: RunLog | None = None) -> dict[str, Any]:
    """The numbers the view shows (also used by tests and `status --json`).

    `progress`: the supervisor's, when it runs in this process; otherwise the run's state is
    read from its events (`log` keeps the place between calls).
    """
    search = store.get_search(search_id)
    counts = store.count_trials(search_id)
    inflight = store.list_trials(search_id, statuses=IN_FLIGHT, limit=200)
    recent = store.list_trials(search_id, newest_first=True, limit=8, include_baseline=False)
    sessions = store.list_sessions(search_id)
    cfg = search.config
    run = (log or RunLog()).update(store, search_id) if progress is None else None
    return {
        "task": cfg.task_label, "search": search_id, "metric": cfg.score_field, "unit": cfg.metric_unit,
        "lower_is_better": cfg.lower_is_better,
        "trials": sum(n for s, n in counts.items() if s != "baseline"), "budget": cfg.max_trials,
        "status_counts": counts, "best_exp": search.best_exp_id, "best_score": search.best_score,
        "baseline": search.baseline_score, "spend_usd": sum(s.cost_usd for s in sessions),
        "open_sessions": sorted({s.specialist for s in sessions if s.ended_at is None}),
        "inflight": inflight, "recent": recent, "roster": list(cfg.roster),
        "activity": dict(progress.sessions) if progress is not None else {},
        "stop_reason": run.stop_reason if run else progress.stop_reason,
        "ended": run.ended if run else progress.ended, "paused": dict(run.paused if run else progress.paused),
        "signals": progress.signals if progress is not None else None,
    }


def _stopping(snap: dict[str, Any]) -> str:
    """'stopping: why; draining N accepted trials', or 'stopped: why' once the run ended."""
    if not snap["stop_reason"]:
        return ""
    if snap["ended"]:
        return f"   stopped: {snap['stop_reason']}"
    n = len(snap["inflight"])
    if not n:
        return f"   stopping: {snap['stop_reason']}"
    text = f"   stopping: {snap['stop_reason']}; draining {n} accepted trial{'s' * (n != 1)}"
    if snap["signals"] is not None:  # this process runs the search: say how to cut it short
        text += f" (Ctrl-C {'again' if snap['signals'] else 'twice'} stops at once)"
    return text


def render(snap: dict[str, Any]) -> Group:
    budget = f"/{snap['budget']}" if snap["budget"] is not None else ""
    arrow = "↓" if snap["lower_is_better"] else "↑"
    head = Text.assemble(
        (f"{snap['task']}", "bold"), f"  trials {snap['trials']}{budget}   best ",
        (f"exp {snap['best_exp']:03d} " if snap["best_exp"] is not None else "", "bold green"),
        (f"{_score(snap['best_score'])} {snap['unit']}{arrow}", "bold green"),
        f"   baseline {_score(snap['baseline'])}   spend ${snap['spend_usd']:.2f}",
        (_stopping(snap), "bold red"),
    )
    table = Table(expand=True, show_edge=False)
    table.add_column("specialist", min_width=10, no_wrap=True)
    table.add_column("doing", min_width=12, ratio=1)
    table.add_column("in flight", ratio=1)
    by_spec: dict[str, list[str]] = {}
    for t in snap["inflight"]:
        started = t.started_at if t.status == TrialStatus.RUNNING else t.created_at
        by_spec.setdefault(t.specialist, []).append(f"exp {t.exp_id:03d} {t.status.value} {_age(started)}")
    for name in snap["roster"]:
        doing = snap["activity"].get(name) or ("in session" if name in snap["open_sessions"] else "")
        if name in snap["paused"]:
            doing = Text(f"paused: {snap['paused'][name]}", "yellow")
        table.add_row(name, doing, ", ".join(by_spec.get(name, [])))
    recent = Table(expand=True, show_edge=False, title="recent trials")
    widths = {"exp": 4, "specialist": 10, "status": 12, snap["metric"]: 9, "delta": 9}
    for col, width in widths.items():
        recent.add_column(col, min_width=width, no_wrap=True)
    recent.add_column("hypothesis", overflow="ellipsis", no_wrap=True, ratio=1)
    for t in snap["recent"]:
        colour = _COLOURS.get(t.status.value, "red")
        delta = "" if t.delta is None else f"{t.delta:+.4g}"
        recent.add_row(f"{t.exp_id:03d}", t.specialist, Text(t.status.value, colour), _score(t.score), delta,
                       t.hypothesis.replace("\n", " ")[:80])
    return Group(Panel(head), table, recent)
