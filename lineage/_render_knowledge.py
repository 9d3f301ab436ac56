"""KNOWLEDGE.md: a bounded summary of the research tree (export, and the MCP knowledge tool).

Sections: the research tree (kept trials with their parents and child counts; tree.tsv holds
the rest), the current best's lineage (root → best), the best's direct children, and the recent
activity table. All from indexed queries; each section has a character budget and adds rows
whole.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from lineage._engine import run_tx
from lineage._render_text import (
    Block,
    clean,
    exp_code,
    fmt_delta,
    fmt_exp,
    fmt_num,
    layout,
    row_line,
    score_label,
    table_row,
)
from lineage.models import Search, Trial
from lineage.sql import SqlLineageStore
from lineage.tables import TrialRow

SHARES = {"tree": 0.25, "ancestry": 0.25, "children": 0.2, "recent": 0.3}
RECENT = 30


def child_counts(store: SqlLineageStore, search_id: str, parents: list[int]) -> dict[int, int]:
    """How many trials name each of `parents` as their parent (one indexed GROUP BY)."""
    if not parents:
        return {}
    stmt = (select(TrialRow.parent_exp, func.count()).where(
        TrialRow.search_id == search_id, col(TrialRow.parent_exp).in_(parents)).group_by(TrialRow.parent_exp))
    return run_tx(store.engine, lambda s: {p: int(n) for p, n in s.exec(stmt)}, write=False)


def _tree_block(store: SqlLineageStore, search: Search, counts: dict[str, int]) -> Block:
    trials = sum(n for st, n in counts.items() if st != "baseline")
    keeps = store.leaderboard(search.id, limit=50)
    kids = child_counts(store, search.id, [t.exp_id for t in keeps])
    head = [
        (f"{trials} trials, {counts.get('keep', 0)} keeps. The whole tree is in tree.tsv (columns exp_id, "
         f"parent_exp, depth, path, specialist, status, {score_label(search)}, delta_vs_best, hypothesis; "
         "preorder, siblings adjacent, `path` = the ancestor chain)."),
        "", "Kept trials (and the baseline), best first, with their parent and number of children:", "",
        table_row(["exp", "parent", score_label(search), "Δ", "children", "specialist", "hypothesis"]),
        "|---|---|---|---|---|---|---|",
    ]
    rows = [table_row([fmt_exp(t.exp_id), exp_code(t.parent_exp) if t.parent_exp is not None else "—",
                       fmt_num(t.score), fmt_delta(t.delta), str(kids.get(t.exp_id, 0)), clean(t.specialist, 40),
                       clean(t.hypothesis, 100)]) for t in keeps]
    unseen = max(0, counts.get("keep", 0) + counts.get("baseline", 0) - len(keeps))
    return Block("## Research tree", rows, head=head, unseen=unseen, empty=head[0])


def _ancestry_block(store: SqlLineageStore, search: Search, best: Trial | None) -> Block:
    title = "## Current-best lineage (root → best)"
    if best is None:
        return Block(title, empty="No best yet.")
    chain = store.ancestry(search.id, best.exp_id)
    rows = [("  " * min(depth, 10)) + row_line(t, search, hyp_chars=100, note=False)
            + ("  ← BEST" if t.exp_id == best.exp_id else "") for depth, t in enumerate(chain)]
    return Block(title, rows, chain=True)


def _children_block(store: SqlLineageStore, search: Search, best: Trial | None) -> Block:
    if best is None:
        return Block("## Best's direct children", empty="No best yet.")
    total = child_counts(store, search.id, [best.exp_id]).get(best.exp_id, 0)
    kids = store.list_trials(search.id, parent_exp=best.exp_id, limit=60)
    return Block(f"## Best's direct children ({total})", [row_line(t, search, hyp_chars=100, note=False) for t in kids],
                 unseen=total - len(kids), empty=f"None yet: no trial has built on {fmt_exp(best.exp_id)}.")


def _recent_block(store: SqlLineageStore, search: Search) -> Block:
    head = [table_row(["exp", "specialist", "status", score_label(search), "Δ", "hypothesis"]),
            "|---|---|---|---|---|---|"]
    rows = [table_row([fmt_exp(t.exp_id), clean(t.specialist, 40), t.status.value, fmt_num(t.score),
                       fmt_delta(t.delta), clean(t.hypothesis, 80)])
            for t in store.list_trials(search.id, newest_first=True, limit=RECENT, include_baseline=False)]
    return Block(f"## Recent activity (last {RECENT})", rows, head=head, empty="No trial yet.")


def render_knowledge(store: SqlLineageStore, search_id: str, *, max_chars: int = 16_000) -> str:
    """KNOWLEDGE.md for a search, at most `max_chars` characters."""
    search = store.get_search(search_id)
    counts = store.count_trials(search_id)
    best = store.get_trial(search_id, search.best_exp_id) if search.best_exp_id is not None else None
    title = (f"# Research knowledge — {clean(search.config.task_label, 120)}\n"
             "*Generated from the lineage database by autoresearch; tree.tsv holds every row.*")
    blocks = [_tree_block(store, search, counts), _ancestry_block(store, search, best),
              _children_block(store, search, best), _recent_block(store, search)]
    return f"{title}\n\n{layout(blocks, list(SHARES.values()), max_chars - len(title) - 3)}\n"
