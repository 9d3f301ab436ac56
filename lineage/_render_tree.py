"""tree.tsv (the whole research tree, for export) and paging over every trial of a search.

tree.tsv rows are in preorder from the roots, children sorted by exp id; `path` is the
slash-joined chain of ancestor exp ids. Roots are rows whose parent is empty or not a known
exp id; rows caught in a parent cycle are started as roots at their smallest exp id. Free text
is written on one line (tabs, newlines and carriage returns become spaces), without quoting,
as the reference harness writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from lineage._engine import run_tx
from lineage._release_cells import number_cell
from lineage.models import Trial
from lineage.sql import SqlLineageStore
from lineage.tables import TrialRow

_FLAT = str.maketrans({c: " " for c in "\t\r\n\x0b\x0c\x85\u2028\u2029"})
_SURROGATE = re.compile(r"[\ud800-\udfff]")


_TABLE = TrialRow.__table__
_TRIAL_COLUMNS = [c for c in _TABLE.c if c.name not in ("id", "heartbeat_at")]


def _pages(store: SqlLineageStore, search_id: str, columns: list, page: int) -> Iterator[list[dict[str, Any]]]:  # type: ignore[type-arg]
    """Rows (as dicts of `columns`) in exp order, in keyset pages of `page` (bounded memory)."""
    last = -1
    while True:
        stmt = (select(*columns).where(_TABLE.c.search_id == search_id, _TABLE.c.exp_id > last)
                .order_by(_TABLE.c.exp_id).limit(page))
        rows = run_tx(store.engine, lambda s, q=stmt: [dict(m) for m in s.connection().execute(q).mappings()],
                      write=False)
        if rows:
            yield rows
        if len(rows) < page:
            return
        last = rows[-1]["exp_id"]


def iter_trials(store: SqlLineageStore, search_id: str, *, page: int = 2000) -> Iterator[Trial]:
    """Every trial in exp order, fetched in keyset pages of `page` rows (bounded memory)."""
    for rows in _pages(store, search_id, _TRIAL_COLUMNS, page):
        yield from (Trial.model_validate(r) for r in rows)


def max_exp_id(store: SqlLineageStore, search_id: str) -> int:
    stmt = select(func.max(TrialRow.exp_id)).where(TrialRow.search_id == search_id)
    return int(run_tx(store.engine, lambda s: s.exec(stmt).one(), write=False) or 0)


def exp_width(max_exp: int) -> int:
    """3 digits as the reference harness writes them, more when ids pass 999 (all ids alike)."""
    return max(3, len(str(max_exp)))


def flat(text: str) -> str:
    """One line for an unquoted TSV cell."""
    text = text.translate(_FLAT)
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def tree_header(score_field: str) -> list[str]:
    return ["exp_id", "parent_exp", "depth", "path", "specialist", "status", score_field, "delta_vs_best",
            "hypothesis"]


def render_tree_tsv(store: SqlLineageStore, search_id: str, score_field: str, *,
                    width: int | None = None) -> Iterator[str]:
    """The lines of tree.tsv (header first, no line ends)."""
    width = width or exp_width(max_exp_id(store, search_id))
    rows: dict[int, tuple[int | None, list[str]]] = {}
    c = _TABLE.c
    for page in _pages(store, search_id, [c.exp_id, c.parent_exp, c.specialist, c.status, c.score, c.delta,
                                          c.hypothesis, c.extra], 5000):
        for r in page:
            extra = r["extra"] or {}
            cells = [flat(r["specialist"]), r["status"], number_cell(extra.get(score_field), r["score"], False),
                     number_cell(extra.get("delta_vs_best"), r["delta"], True), flat(r["hypothesis"])]
            rows[r["exp_id"]] = (r["parent_exp"], cells)
    yield "\t".join(tree_header(flat(score_field)))
    for exp, depth, path in _preorder(rows, width):
        parent = rows[exp][0]
        ptext = "" if parent is None else f"{parent:0{width}d}"
        yield "\t".join([f"{exp:0{width}d}", ptext, str(depth), path, *rows[exp][1]])


def _preorder(rows: dict[int, tuple[int | None, list[str]]], width: int) -> Iterator[tuple[int, int, str]]:
    """(exp, depth, path) in preorder; cycle members start as roots at their smallest id."""
    children: dict[int | None, list[int]] = {}
    for exp in sorted(rows):
        parent = rows[exp][0]
        key = parent if parent in rows and parent != exp else None
        children.setdefault(key, []).append(exp)
    seen: set[int] = set()

    def code(exp: int) -> str:
        return f"{exp:0{width}d}"

    for start in [*children.get(None, []), *sorted(rows)]:
        if start in seen:
            continue
        stack = [(start, 0, code(start))]
        while stack:
            exp, depth, path = stack.pop()
            if exp in seen:
                continue
            seen.add(exp)
            yield exp, depth, path
            for child in reversed(children.get(exp, [])):
                if child not in seen:
                    stack.append((child, depth + 1, f"{path}/{code(child)}"))

