"""Deterministic, bounded markdown views of a search's lineage.

Every view is built from indexed queries (the store's `get_search`, `count_trials`,
`leaderboard`, `ancestry` and `list_trials(..., newest_first=True, limit=...)`, plus indexed
counts), never by loading every row. Each section has a character budget; rows are added whole
and the rows that do not fit are counted in a `… N more not shown` line, so a row is never cut.

`render_view` is what a specialist reads: `render_lineage_view` (sections: header, leaderboard,
best's ancestry, best's children, recent activity, your rows, your neighbours' rows,
saturation) or, for lineage-off arms, `render_best_only`.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from lineage._engine import run_tx
from lineage._render_knowledge import render_knowledge
from lineage._render_text import (
    Section,
    clean,
    fmt_delta,
    fmt_exp,
    fmt_num,
    row_line,
    score_label,
    table_row,
)
from lineage._render_tree import render_tree_tsv
from lineage.models import Search, Trial, TrialStatus
from lineage.sql import SqlLineageStore
from lineage.tables import TrialRow

__all__ = [
    "render_best_only", "render_knowledge", "render_leaderboard", "render_lineage_view",
    "render_tree_tsv", "render_view", "saturation_signal",
]

# Share of the body budget (max_chars minus the header) of each section, in view order.
SHARES = {"board": 0.18, "ancestry": 0.15, "children": 0.13, "recent": 0.18, "own": 0.13,
          "neighbours": 0.13, "saturation": 0.10}
RECENT, OWN, NEIGHBOUR, CHILDREN = 10, 8, 4, 30
SAT_OWN, SAT_GLOBAL, SAT_REL = 5, 20, 1e-3
_NOT_THE_IDEA = (TrialStatus.QUEUED, TrialStatus.RUNNING, TrialStatus.INFRA_ERROR, TrialStatus.CANCELLED)


def count_rows(store: SqlLineageStore, search_id: str, *, parent_exp: int | None = None,
               specialist: str | None = None) -> int:
    """Indexed count of a search's trials (baseline excluded) by parent or specialist."""
    stmt = select(func.count()).select_from(TrialRow).where(TrialRow.search_id == search_id, TrialRow.exp_id > 0)
    if parent_exp is not None:
        stmt = stmt.where(TrialRow.parent_exp == parent_exp)
    if specialist is not None:
        stmt = stmt.where(TrialRow.specialist == specialist)
    return int(run_tx(store.engine, lambda s: s.exec(stmt).one(), write=False))


def _metric(search: Search) -> str:
    c = search.config
    unit = f" ({clean(c.metric_unit, 20)})" if c.metric_unit else ""
    return f"{score_label(search)}{unit}, {'lower' if c.lower_is_better else 'higher'} is better"


def _best_line(search: Search, best: Trial | None) -> str:
    if best is None:
        return "Current best: none yet (no valid trial and no baseline)."
    return (f"Current best: {fmt_exp(best.exp_id)} by {clean(best.specialist, 40)}, "
            f"{score_label(search)}={fmt_num(best.score)} — {clean(best.hypothesis, 120)}")


def _header(search: Search, counts: dict[str, int], specialist: str, best: Trial | None) -> str:
    trials = sum(n for st, n in counts.items() if st != TrialStatus.BASELINE.value)
    top = sorted(((n, st) for st, n in counts.items() if st != "baseline"), key=lambda x: (-x[0], x[1]))
    margin = search.config.margin
    return "\n".join([
        f"# Lineage — task {clean(search.config.task, 80)} — you are **{clean(specialist, 40)}**",
        f"Metric: {_metric(search)}. Trials: {trials} ("
        + ", ".join(f"{n} {st}" for n, st in top[:8]) + ").",
        _best_line(search, best),
        f"Baseline: {fmt_num(search.baseline_score)} (spread {fmt_num(search.baseline_spread)}, "
        f"n={search.baseline_n}). Keep rule: beat the best by more than the noise margin "
        f"{fmt_num(margin.effective(search.baseline_spread))} (= max(abs {fmt_num(margin.abs_delta)}, "
        f"{fmt_num(margin.sigmas)} × spread)).",
    ])


def _board_section(store: SqlLineageStore, search: Search, budget: int, limit: int = 20,
                   title: str = "## Leaderboard (kept trials, best first)") -> str:
    head = [table_row(["exp", score_label(search), "Δ", "margin", "specialist", "hypothesis"]),
            "|---|---|---|---|---|---|"]
    sec = Section(title, budget, head=head)
    rows = store.leaderboard(search.id, limit=limit)
    for t in rows:
        sec.add(table_row([fmt_exp(t.exp_id), fmt_num(t.score), fmt_delta(t.delta), fmt_num(t.margin),
                           clean(t.specialist, 40), clean(t.hypothesis, 100)]))
    if not rows:
        sec.table = False
        sec.lines = [title, "No kept trial and no baseline yet."]
    return sec.text()


def _ancestry_section(store: SqlLineageStore, search: Search, best: Trial | None, budget: int) -> str:
    title = "## The best's ancestry (root → best)"
    if best is None:
        return f"{title}\nNo best yet."
    chain = store.ancestry(search.id, best.exp_id)
    lines = [row_line(t, search) + ("  ← BEST" if t.exp_id == best.exp_id else "") for t in chain]
    room = budget - len(title) - 60
    if sum(len(x) + 1 for x in lines) <= room:
        return "\n".join([title, *lines])
    # Too long: keep the root, then as many of the rows nearest the best as fit.
    root = lines[:1] if len(lines[0]) + 1 <= room else []
    used, kept = sum(len(x) + 1 for x in root), []
    for line in reversed(lines[1:]):
        if used + len(line) + 1 > room:
            break
        kept.insert(0, line)
        used += len(line) + 1
    hidden = len(lines) - len(root) - len(kept)
    return "\n".join([title, *root, f"… {hidden} intermediate ancestors not shown", *kept])


def _rows_section(title: str, rows: list[Trial], search: Search, budget: int, total: int | None = None,
                  empty: str = "None yet.") -> str:
    sec = Section(title, budget)
    for t in rows:
        sec.add(row_line(t, search))
    if not rows:
        sec.lines.append(empty)
    return sec.text(unseen=(total - len(rows)) if total is not None else 0)


def neighbours(roster: tuple[str, ...], specialist: str) -> list[str]:
    """The previous and next specialist in roster order (cyclic); none below 3 specialists."""
    if len(roster) < 3 or specialist not in roster:
        return []
    i = roster.index(specialist)
    return [roster[(i - 1) % len(roster)], roster[(i + 1) % len(roster)]]


def saturation_signal(search: Search, own: list[Trial], recent: list[Trial]) -> str | None:
    """A warning when small changes have stopped paying off, or None.

    Rule (no fixed epsilon; the scale follows the task's metric):
      scale = max(effective noise margin, baseline spread, 0.001 × |best score|).
      Rows that are queued, running, infra_error or cancelled are ignored (not the idea's fault).
      A row is *flat* if it is not a keep and either has no delta (a failure: crash, gate miss,
      budget overrun…) or |delta| < scale.
      The signal fires when the specialist's last 5 counted rows (at least 5) and the search's
      last 20 counted rows are all flat.
    """
    mine = [t for t in own if t.status not in _NOT_THE_IDEA][:SAT_OWN]
    every = [t for t in recent if t.status not in _NOT_THE_IDEA][:SAT_GLOBAL]
    if len(mine) < SAT_OWN:
        return None
    scale = _scale(search)
    if not all(_flat(t, scale) for t in mine + every):
        return None
    return (f"⚠ Your last {len(mine)} trials and the search's last {len(every)} trials produced no keep: "
            f"each failed or moved {score_label(search)} by less than {fmt_num(scale)} (scale = max(noise "
            f"margin, baseline spread, 0.1% of the best)). Small tweaks around {fmt_exp(search.best_exp_id)} "
            "look exhausted: try a structural change, or rebase on another kept trial from the leaderboard.")


def _scale(search: Search) -> float:
    margin = search.config.margin.effective(search.baseline_spread)
    spread = search.baseline_spread or 0.0
    best = abs(search.best_score) if search.best_score is not None else 0.0
    return max(margin, spread, SAT_REL * best)


def _flat(t: Trial, scale: float) -> bool:
    if t.status == TrialStatus.KEEP:
        return False
    return t.delta is None or abs(t.delta) < scale


def _best(store: SqlLineageStore, search: Search) -> Trial | None:
    return store.get_trial(search.id, search.best_exp_id) if search.best_exp_id is not None else None


def render_lineage_view(store: SqlLineageStore, search_id: str, specialist: str, *,
                        max_chars: int = 12_000) -> str:
    """The lineage a specialist reads before proposing, at most `max_chars` characters."""
    search = store.get_search(search_id)
    best = _best(store, search)
    counts = store.count_trials(search_id)
    header = _header(search, counts, specialist, best)
    body = max(0, max_chars - len(header) - 2 * len(SHARES))
    b = {k: int(v * body) for k, v in SHARES.items()}
    recent = store.list_trials(search_id, newest_first=True, limit=SAT_GLOBAL, include_baseline=False)
    own = store.list_trials(search_id, specialists=[specialist], newest_first=True, limit=OWN,
                            include_baseline=False)
    total = sum(n for st, n in counts.items() if st != TrialStatus.BASELINE.value)
    parts = [header, _board_section(store, search, b["board"]), _ancestry_section(store, search, best, b["ancestry"])]
    parts.append(_children_section(store, search, best, b["children"]))
    parts.append(_rows_section(f"## Recent activity (all specialists, newest first, last {RECENT})",
                               recent[:RECENT], search, b["recent"], total))
    parts.append(_rows_section(f"## Your recent trials ({clean(specialist, 40)}, newest first)", own, search,
                               b["own"], count_rows(store, search_id, specialist=specialist),
                               empty="You have not submitted a trial yet."))
    parts.append(_neighbour_section(store, search, specialist, b["neighbours"]))
    signal = saturation_signal(search, own, recent)
    sat = Section("## Saturation signal", b["saturation"])
    sat.add(signal or "No saturation signal: recent trials still move the metric or keep.")
    parts.append(sat.text())
    return "\n\n".join(parts)


def _children_section(store: SqlLineageStore, search: Search, best: Trial | None, budget: int) -> str:
    if best is None:
        return "## The best's children\nNo best yet."
    kids = store.list_trials(search.id, parent_exp=best.exp_id, newest_first=True, limit=CHILDREN)
    total = count_rows(store, search.id, parent_exp=best.exp_id)
    return _rows_section(f"## The best's children ({total}; newest first)", kids, search, budget, total,
                         empty=f"No trial has built on {fmt_exp(best.exp_id)} yet.")


def _neighbour_section(store: SqlLineageStore, search: Search, specialist: str, budget: int) -> str:
    names = neighbours(search.config.roster, specialist)
    title = "## Your neighbours' recent trials"
    if not names:
        return f"{title}\nNone: neighbours are the previous and next roster specialists (3 or more needed)."
    sec = Section(f"{title} ({', '.join(clean(n, 40) for n in names)})", budget)
    unseen = 0
    for name in names:
        rows = store.list_trials(search.id, specialists=[name], newest_first=True, limit=NEIGHBOUR,
                                 include_baseline=False)
        for t in rows:
            sec.add(row_line(t, search))
        if len(rows) == NEIGHBOUR:
            unseen += count_rows(store, search.id, specialist=name) - NEIGHBOUR
    if len(sec.lines) == 1 and not sec.hidden:
        sec.lines.append("No trials from them yet.")
    return sec.text(unseen=unseen, what="older neighbour rows not shown")


def render_best_only(store: SqlLineageStore, search_id: str, specialist: str | None = None) -> str:
    """The lineage-off view: only the current best, and why nothing else is shown."""
    search = store.get_search(search_id)
    best = _best(store, search)
    who = f" — you are **{clean(specialist, 40)}**" if specialist else ""
    lines = [f"# Current best — task {clean(search.config.task, 80)}{who}",
             f"Metric: {_metric(search)}.", _best_line(search, best)]
    if best is not None and best.delta is not None:
        lines.append(f"Its delta when kept: {fmt_delta(best.delta)}.")
    lines.append("The lineage is hidden for this arm: earlier trials, their code, scores and notes are "
                 "not shown. Propose from the task, the current best and your own reasoning.")
    return "\n".join(lines)


def render_view(store: SqlLineageStore, search_id: str, specialist: str, *, max_chars: int = 12_000) -> str:
    """The view a specialist gets: the lineage, or only the best when the arm hides it."""
    search = store.get_search(search_id)
    if not search.config.lineage:
        return render_best_only(store, search_id, specialist)
    return render_lineage_view(store, search_id, specialist, max_chars=max_chars)


def render_leaderboard(store: SqlLineageStore, search_id: str, limit: int = 20, *, max_chars: int = 8_000) -> str:
    """LEADERBOARD.md: the current best and the top `limit` kept trials."""
    search = store.get_search(search_id)
    best = _best(store, search)
    head = [f"# Leaderboard — {clean(search.config.task, 80)}", f"Metric: {_metric(search)}.", "",
            "## Current best", _best_line(search, best)]
    if best is not None:
        head.append(f"Specialist: {clean(best.specialist, 40)}; Δ when kept: {fmt_delta(best.delta)}; "
                    f"noise margin: {fmt_num(search.config.margin.effective(search.baseline_spread))}; "
                    f"baseline spread: {fmt_num(search.baseline_spread)}.")
    text = "\n".join(head)
    board = _board_section(store, search, max(0, max_chars - len(text) - 2), limit,
                           title=f"## Top {limit} kept trials")
    return f"{text}\n\n{board}\n"
