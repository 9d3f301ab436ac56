"""Deterministic, bounded markdown views of a search's lineage.

Every view is built from the store's indexed queries (`get_search`, `leaderboard`,
`list_trials(..., newest_first=True, limit=...)`, `count`, `ancestry_ids`, `get_trials`),
never by loading every row. Each section has a character budget; rows are added whole
and the rows that do not fit are counted in a `… N more not shown` line, so a row is never cut.

`render_view` is what a specialist reads: `render_lineage_view` (sections: header, leaderboard,
best's ancestry, best's children, recent activity, your rows, your neighbours' rows,
saturation) or, for lineage-off arms, `render_best_only`.
"""

from __future__ import annotations


from lineage._render_knowledge import render_knowledge
from lineage._render_text import (
    Block,
    clean,
    fmt_delta,
    fmt_exp,
    fmt_num,
    layout,
    row_line,
    score_label,
    table_row,
)
from lineage._render_tree import render_tree_tsv
from lineage.models import Search, Trial, TrialStatus
from lineage.sql import SqlLineageStore

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


def _metric(search: Search) -> str:
    c = search.config
    unit = f" ({clean(c.metric_unit, 20)})" if c.metric_unit else ""
    return f"{score_label(search)}{unit}, {'lower' if c.lower_is_better else 'higher'} is better"


def _best_line(search: Search, best: Trial | None) -> str:
    if best is None:
        return "Current best: none yet (no valid trial and no baseline)."
    return (f"Current best: {fmt_exp(best.exp_id)} by {clean(best.specialist, 40)}, "
            f"{score_label(search)}={fmt_num(best.score)} — {clean(best.hypothesis, 120)}")


def _header(search: Search, trials: int, keeps: int, specialist: str, best: Trial | None) -> str:
    margin = search.config.margin
    return "\n".join([
        f"# Lineage — task {clean(search.config.task_label, 120)} — you are **{clean(specialist, 40)}**",
        f"Metric: {_metric(search)}. Trials: {trials} ({keeps} kept).",
        _best_line(search, best),
        (f"Baseline: {fmt_num(search.baseline_score)} (spread {fmt_num(search.baseline_spread)}, "
         f"n={search.baseline_n}). Keep rule: beat the best by more than the noise margin "
         f"{fmt_num(margin.effective(search.baseline_spread))} (= max(abs {fmt_num(margin.abs_delta)}, "
         f"{fmt_num(margin.sigmas)} × spread))."),
    ])


def _board_block(store: SqlLineageStore, search: Search, limit: int = 20,
                 title: str = "## Leaderboard (kept trials, best first)") -> Block:
    head = [table_row(["exp", score_label(search), "Δ", "margin", "specialist", "hypothesis"]),
            "|---|---|---|---|---|---|"]
    rows = [table_row([fmt_exp(t.exp_id), fmt_num(t.score), fmt_delta(t.delta), fmt_num(t.margin),
                       clean(t.specialist, 40), clean(t.hypothesis, 100)])
            for t in store.leaderboard(search.id, limit=limit)]
    return Block(title, rows, head=head, empty="No kept trial and no baseline yet.")


def _ancestry_block(store: SqlLineageStore, search: Search, best: Trial | None, room: int) -> Block:
    """The chain root → best; only the root and the `room` rows nearest the best are fetched."""
    title = "## The best's ancestry (root → best)"
    if best is None:
        return Block(title, empty="No best yet.")
    ids = store.ancestry_ids(search.id, best.exp_id)
    shown = ids if len(ids) <= room + 1 else [ids[0], *ids[-room:]]
    rows = [row_line(t, search) + ("  ← BEST" if t.exp_id == best.exp_id else "")
            for t in store.get_trials(search.id, shown)]
    if len(shown) < len(ids):
        rows.insert(1, f"… {len(ids) - len(shown)} intermediate ancestors not fetched")
    return Block(title, rows, chain=True)


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
      The signal fires when the specialist's last 5 counted rows (among its 8 latest; at least
      5 needed) and the search's counted rows among its 20 latest are all flat.
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
    total = store.count(search_id)
    header = _header(search, total, store.count(search_id, status=TrialStatus.KEEP.value), specialist, best)
    recent = store.list_trials(search_id, newest_first=True, limit=SAT_GLOBAL, include_baseline=False)
    own = store.list_trials(search_id, specialists=[specialist], newest_first=True, limit=OWN,
                            include_baseline=False)
    signal = saturation_signal(search, own, recent)
    blocks = [
        _board_block(store, search), _ancestry_block(store, search, best, max(8, max_chars // 600)), _children_block(store, search, best),
        Block(f"## Recent activity (all specialists, newest first, last {RECENT})",
              [row_line(t, search) for t in recent[:RECENT]], unseen=total - len(recent[:RECENT]), empty="None yet."),
        Block(f"## Your recent trials ({clean(specialist, 40)}, newest first)", [row_line(t, search) for t in own],
              unseen=_unseen(store, search_id, specialist, len(own), OWN), empty="You have not submitted a trial yet."),
        _neighbour_block(store, search, specialist),
        Block("## Saturation signal", [signal or "No saturation signal: recent trials still move the metric or keep."]),
    ]
    body = layout(blocks, list(SHARES.values()), max_chars - len(header) - 2)
    return f"{header}\n\n{body}"


def _unseen(store: SqlLineageStore, search_id: str, specialist: str, got: int, limit: int) -> int:
    """Rows of `specialist` beyond the `got` fetched (counted only when the fetch was full)."""
    return store.count(search_id, specialist=specialist) - got if got >= limit else 0


def _children_block(store: SqlLineageStore, search: Search, best: Trial | None) -> Block:
    if best is None:
        return Block("## The best's children", empty="No best yet.")
    kids = store.list_trials(search.id, parent_exp=best.exp_id, newest_first=True, limit=CHILDREN)
    total = store.count(search.id, parent_exp=best.exp_id) if len(kids) >= CHILDREN else len(kids)
    return Block(f"## The best's children ({total}; newest first)", [row_line(t, search) for t in kids],
                 unseen=total - len(kids), empty=f"No trial has built on {fmt_exp(best.exp_id)} yet.")


def _neighbour_block(store: SqlLineageStore, search: Search, specialist: str) -> Block:
    names = neighbours(search.config.roster, specialist)
    title = "## Your neighbours' recent trials"
    if not names:
        return Block(title, empty="None: neighbours are the previous and next roster specialists (3 or more needed).")
    rows: list[str] = []
    unseen = 0
    for name in names:
        got = store.list_trials(search.id, specialists=[name], newest_first=True, limit=NEIGHBOUR,
                                include_baseline=False)
        rows.extend(row_line(t, search) for t in got)
        unseen += _unseen(store, search.id, name, len(got), NEIGHBOUR)
    return Block(f"{title} ({', '.join(clean(n, 40) for n in names)})", rows, unseen=unseen,
                 what="older neighbour rows not shown", empty="No trials from them yet.")


def render_best_only(store: SqlLineageStore, search_id: str, specialist: str | None = None) -> str:
    """The lineage-off view: only the current best, and why nothing else is shown."""
    search = store.get_search(search_id)
    best = _best(store, search)
    who = f" — you are **{clean(specialist, 40)}**" if specialist else ""
    lines = [f"# Current best — task {clean(search.config.task_label, 120)}{who}",
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
    head = [f"# Leaderboard — {clean(search.config.task_label, 120)}", f"Metric: {_metric(search)}.", "",
            "## Current best", _best_line(search, best)]
    if best is not None:
        head.append(f"Specialist: {clean(best.specialist, 40)}; Δ when kept: {fmt_delta(best.delta)}; "
                    f"noise margin: {fmt_num(search.config.margin.effective(search.baseline_spread))}; "
                    f"baseline spread: {fmt_num(search.baseline_spread)}.")
    text = "\n".join(head)
    board = _board_block(store, search, limit, title=f"## Top {limit} kept trials")
    return f"{text}\n\n{board.render(max(0, max_chars - len(text) - 3))}\n"
