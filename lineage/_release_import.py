"""Reading a release-artifact directory into trial rows (no database here).

`read_release` locates the files (the directory itself or its `blackboard/`), reads best.json
and tree.tsv when present, infers the score field, reads results.tsv (recovering damaged rows,
see `lineage/_tsv.py`), maps every row (`lineage/_release_cells.py`), infers the direction,
replays keeps and chooses the best (`lineage/_release_infer.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lineage._release_cells import (
    NATIVE,
    RowResult,
    known_status,
    parse_exp,
    parse_float,
    parse_time,
    read_row,
)
from lineage._release_infer import (
    choose_best,
    infer_direction,
    infer_score_field,
    replay_keeps,
)
from lineage._tsv import (
    FREE_TEXT,
    Problem,
    Record,
    Table,
    exp_like,
    read_plain,
    read_table,
)
from lineage.exceptions import ImportFormatError

Validator = Callable[[str], bool]


@dataclass
class Release:
    """Everything read from a release directory, ready for `import_trials`."""

    root: Path
    task: str
    header: list[str]
    rows: list[RowResult]
    score_field: str
    score_field_rule: str
    lower_is_better: bool
    direction_rule: str
    best_exp_id: int | None
    best_score: float | None
    rows_read: int
    extra_columns: list[str]
    recovered: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def locate(src: Path) -> Path:
    """The directory holding results.tsv: `src` or `src/blackboard`."""
    if not src.is_dir():
        raise ImportFormatError(f"{src} is not a directory; point at a release's blackboard/ directory")
    for root in (src, src / "blackboard"):
        if (root / "results.tsv").is_file():
            return root
    raise ImportFormatError(f"{src} is not a release layout: no results.tsv (expected results.tsv, tree.tsv, "
                            "best.json, snapshots/)")


def _task_name(root: Path) -> str:
    name = root.resolve().name
    if name == "blackboard":
        name = root.resolve().parent.name
    return re.sub(r"^published[-_]", "", name) or "imported"


def _read_best(root: Path, problems: list[Problem]) -> dict[str, Any]:
    path = root / "best.json"
    if not path.is_file():
        problems.append(Problem("best.json", "file", "missing; the best is inferred from the keeps"))
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        problems.append(Problem("best.json", "file", f"not JSON ({exc}); the best is inferred from the keeps"))
        return {}
    if not isinstance(data, dict):
        problems.append(Problem("best.json", "file", "not a JSON object; the best is inferred from the keeps"))
        return {}
    return data


def _read_tree(root: Path, problems: list[Problem]) -> tuple[list[str], dict[int, dict[str, str]]]:
    path = root / "tree.tsv"
    if not path.is_file():
        return [], {}
    header, rows = read_plain(path, problems)
    by_exp: dict[int, dict[str, str]] = {}
    for row in rows:
        if len(row) == len(header) and (exp := parse_exp(row[0])) is not None:
            by_exp[exp] = dict(zip(header, row, strict=True))
    return header, by_exp


def _kinds(header: list[str], intact: list[Record]) -> list[Validator]:
    """One validator per column, learned from the rows that were intact."""
    out: list[Validator] = []
    for i, name in enumerate(header):
        values = [r.fields[i].strip() for r in intact if r.fields[i].strip()]
        if name == "status":
            out.append(known_status)
        elif name in FREE_TEXT:
            out.append(lambda v: True)
        elif name in ("exp_id", "parent_exp", "baseline_exp"):
            out.append(lambda v: not v.strip() or exp_like(v))
        elif name == "timestamp":
            out.append(lambda v: not v.strip() or parse_time(v) is not None)
        elif values and all(parse_float(v)[0] is not None for v in values):
            out.append(lambda v: parse_float(v)[1])
        else:
            out.append(lambda v: not any(c.isspace() for c in v.strip()))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def _agrees(cells: dict[str, str], tree_row: dict[str, str], score_field: str) -> bool:
    if cells.get("status", "").strip().lower() != tree_row.get("status", "").strip().lower():
        return False
    if score_field in tree_row and parse_float(cells.get(score_field, ""))[0] != parse_float(tree_row[score_field])[0]:
        return False
    return "hypothesis" not in tree_row or _norm(cells.get("hypothesis", "")) == _norm(tree_row["hypothesis"])


def _tiebreak(tree: dict[int, dict[str, str]], score_field: str):  # type: ignore[no-untyped-def]
    def pick(header: list[str], candidates: list[list[str]]) -> list[list[str]]:
        exp = parse_exp(candidates[0][0]) if candidates else None
        if exp not in tree:
            return candidates
        return [c for c in candidates if _agrees(dict(zip(header, c, strict=True)), tree[exp], score_field)]
    return pick


def _rows(table: Table, score_field: str, tree: dict[int, dict[str, str]], rel: Release) -> list[RowResult]:
    now = datetime.now(UTC)
    seen: dict[int, RowResult] = {}
    for rec in table.records:
        cells = dict(zip(table.header, rec.fields, strict=True))
        res = read_row(cells, score_field, now)
        if isinstance(res, Problem):
            rel.problems.append(Problem(f"line {rec.line}" if res.row == "row" else res.row, res.field, res.why))
            continue
        label = f"exp {res.exp_id:03d}"
        if res.exp_id in seen:
            rel.problems.append(Problem(label, "exp_id", f"duplicate exp id (line {rec.line}); the first row is kept"))
            continue
        if rec.recovered:
            rel.recovered.append((label, rec.recovered))
            if res.exp_id in tree and not _agrees(cells, tree[res.exp_id], score_field):
                rel.problems.append(Problem(label, "row", "recovered row disagrees with tree.tsv (status, score "
                                            "or hypothesis); check it"))
        rel.problems.extend(res.problems)
        seen[res.exp_id] = res
    return [seen[k] for k in sorted(seen)]


def read_release(src: Path, *, lower_is_better: bool | None, score_field: str | None, task: str | None) -> Release:
    """Read and check a release directory (see the module docstring)."""
    root = locate(src)
    problems: list[Problem] = []
    best = _read_best(root, problems)
    tree_header, tree = _read_tree(root, problems)
    with open(root / "results.tsv", encoding="utf-8", errors="replace", newline="") as fh:
        header = [h.strip() for h in fh.readline().removeprefix("\ufeff").rstrip("\r\n").split("\t")]
    if "exp_id" not in header or "status" not in header:
        raise ImportFormatError(f"{root / 'results.tsv'} has no exp_id/status header; not a release results.tsv")
    field_name, field_rule = infer_score_field(score_field, header, best, tree_header)
    table = read_table(root / "results.tsv", _kinds, _tiebreak(tree, field_name))
    named = best.get("task") if isinstance(best.get("task"), str) and best.get("task") else None
    rel = Release(root, task or named or _task_name(root), table.header, [], field_name, field_rule, True, "", None, None,
                  len(table.records), [c for c in table.header if c not in NATIVE and c != field_name],
                  problems=problems + table.problems)
    rel.rows = _rows(table, field_name, tree, rel)
    best_exp = parse_exp(str(best.get("exp_id") or "")) if best else None
    best_score, _ok = parse_float(str(best.get(field_name, ""))) if best else (None, True)
    rel.lower_is_better, rel.direction_rule = infer_direction(
        lower_is_better, best, best_score, best_exp, rel.rows, rel.problems)
    replay_keeps(rel.rows, rel.lower_is_better, rel.problems)
    rel.best_exp_id, rel.best_score = choose_best(rel.rows, rel.lower_is_better, best_exp, best_score, rel.problems)
    return rel
