"""Reading a release-artifact directory into trial rows (no database here).

`read_release` locates the files (the directory itself or its `blackboard/`), reads best.json
and tree.tsv when present, infers the score field, reads results.tsv (recovering damaged rows,
see `lineage/_release_rows.py`), maps every row (`lineage/_release_cells.py`), infers the
direction, replays keeps and chooses the best (`lineage/_release_infer.py`).

Nothing is dropped quietly. `Release.lost` lists every row that is not imported, with where it
was and why: a row of results.tsv that could not be read, or was read but not as a trial
(unreadable exp id, unknown status), a second row with an exp id already taken that differs
from the first, a recovered row that disagrees with tree.tsv, and an exp id that tree.tsv or a
row start of results.tsv holds but no imported row has. So the rows imported are exactly the
distinct exp ids of results.tsv and tree.tsv, less the lost ones. A recovered row that tree.tsv
agrees with says so; one that tree.tsv has no row for is reported.
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
    map_status,
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
from lineage._release_rows import Check, read_table
from lineage._tsv import (
    FREE_TEXT,
    Problem,
    Record,
    Table,
    exp_like,
    holds_row_start,
    parse_exp,
    read_plain,
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
    lost: list[Problem] = field(default_factory=list)


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


def _read_tree(root: Path, problems: list[Problem]) -> tuple[list[str], dict[int, dict[str, str]], set[int]]:
    """tree.tsv's header, its rows of the header's width by exp id, and every exp id it holds."""
    path = root / "tree.tsv"
    if not path.is_file():
        return [], {}, set()
    header, rows = read_plain(path, problems)
    by_exp: dict[int, dict[str, str]] = {}
    ids: set[int] = set()
    for row in rows:
        exp = parse_exp(row[0])
        if exp is None:
            problems.append(Problem("tree.tsv", "exp_id", f"unreadable exp id {row[0][:40]!r}; line skipped"))
            continue
        ids.add(exp)
        if len(row) == len(header):
            by_exp.setdefault(exp, dict(zip(header, row, strict=True)))
        else:
            problems.append(Problem(f"exp {exp:03d}", "tree.tsv", f"{len(row)} fields where its header has "
                                    f"{len(header)}; not used to check the row"))
    return header, by_exp, ids


def _kinds(header: list[str], intact: list[Record]) -> list[Validator]:
    """One validator per column, learned from the rows that were intact."""
    out: list[Validator] = []
    for i, name in enumerate(header):
        values = [r.fields[i].strip() for r in intact if r.fields[i].strip()]
        if name == "status":
            out.append(known_status)
        elif name in FREE_TEXT:
            out.append(lambda v: not holds_row_start(v))
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
    """Text without its whitespace: tree.tsv flattens tabs and newlines, and drops a space at times."""
    return "".join(text.split())


def _same_status(a: str, b: str) -> bool:
    x, y = map_status(a)[0], map_status(b)[0]
    return x == y or ("valid" in (x, y) and {x, y} <= {"valid", "keep", "discard"})


def _agrees(cells: dict[str, str], tree_row: dict[str, str], score_field: str) -> bool:
    if not _same_status(cells.get("status", ""), tree_row.get("status", "")):
        return False
    if score_field in tree_row and parse_float(cells.get(score_field, ""))[0] != parse_float(tree_row[score_field])[0]:
        return False
    return "hypothesis" not in tree_row or _norm(cells.get("hypothesis", "")) == _norm(tree_row["hypothesis"])


def _check(tree: dict[int, dict[str, str]], score_field: str) -> Check:
    """The readings of a damaged row that its tree.tsv row agrees with (all, if it has none)."""
    def agreeing(header: list[str], readings: list[list[str]]) -> list[list[str]]:
        exp = parse_exp(readings[0][0]) if readings else None
        if exp not in tree:
            return readings
        return [c for c in readings if _agrees(dict(zip(header, c, strict=True)), tree[exp], score_field)]
    return agreeing


def _label_id(label: str) -> int | None:
    return int(label[4:]) if label.startswith("exp ") and label[4:].isdigit() else None


def _rows(table: Table, score_field: str, tree: dict[int, dict[str, str]], rel: Release) -> list[RowResult]:
    """Every record read as a trial's fields; the rows that cannot be trials go to `rel.lost`."""
    now = datetime.now(UTC)
    seen: dict[int, tuple[RowResult, Record]] = {}
    for rec in table.records:
        cells = dict(zip(table.header, rec.fields, strict=True))
        where = f"results.tsv line {rec.line}"
        res = read_row(cells, score_field, now)
        if isinstance(res, Problem):
            rel.lost.append(Problem(f"line {rec.line}" if res.row == "row" else res.row, where, res.why))
            continue
        label = f"exp {res.exp_id:03d}"
        if res.exp_id in seen:
            first = seen[res.exp_id][1]
            if rec.fields == first.fields:
                rel.problems.append(Problem(label, "exp_id", f"line {rec.line} is identical to line {first.line}; "
                                            "imported once"))
            else:
                rel.lost.append(Problem(label, where, f"a second row with this exp id that differs from line "
                                        f"{first.line} (the one imported)"))
            continue
        if rec.recovered and not _recovered(rec, cells, label, where, tree, score_field, rel):
            continue
        rel.problems.extend(res.problems)
        seen[res.exp_id] = (res, rec)
    return [seen[k][0] for k in sorted(seen)]


def _recovered(rec: Record, cells: dict[str, str], label: str, where: str, tree: dict[int, dict[str, str]],
               score_field: str, rel: Release) -> bool:
    """Whether a row put back together is imported: tree.tsv must agree with it where it has the row."""
    exp = parse_exp(rec.fields[0])
    if exp not in tree:
        rel.recovered.append((label, rec.recovered))
        rel.problems.append(Problem(label, "row", f"recovered ({rec.recovered}) with no tree.tsv row to check it "
                                    "against; check it"))
        return True
    if not _agrees(cells, tree[exp], score_field):
        rel.lost.append(Problem(label, where, f"recovered ({rec.recovered}), but it disagrees with tree.tsv "
                                "(status, score or hypothesis)"))
        return False
    rel.recovered.append((label, rec.recovered + "; agrees with tree.tsv"))
    return True


def _account(rel: Release, table: Table, tree_ids: set[int]) -> None:
    """Add to `rel.lost` every exp id of results.tsv or tree.tsv that no imported row has, so the
    rows imported are the distinct exp ids less the rows listed; note the rows tree.tsv lacks."""
    imported = {r.exp_id for r in rel.rows}
    rel.lost = [p for _, p in table.lost] + rel.lost
    listed = {e for p in rel.lost if (e := _label_id(p.row)) is not None}
    in_results = table.row_ids | {e for e, _ in table.lost if e is not None}
    for exp in sorted((in_results | tree_ids) - imported - listed):
        why = ("a line of results.tsv starts this row, but no row was read from it" if exp in in_results
               else "in tree.tsv, but results.tsv has no row for it")
        rel.lost.append(Problem(f"exp {exp:03d}", "results.tsv" if exp in in_results else "tree.tsv", why))
    rel.lost.sort(key=lambda p: (_label_id(p.row) is None, _label_id(p.row) or 0))
    if tree_ids:
        rel.problems.extend(Problem(f"exp {e:03d}", "tree.tsv", "not in tree.tsv; imported from results.tsv alone")
                            for e in sorted(imported - tree_ids))


def read_release(src: Path, *, lower_is_better: bool | None, score_field: str | None, task: str | None) -> Release:
    """Read and check a release directory (see the module docstring)."""
    root = locate(src)
    problems: list[Problem] = []
    best = _read_best(root, problems)
    tree_header, tree, tree_ids = _read_tree(root, problems)
    with open(root / "results.tsv", encoding="utf-8", errors="replace", newline="") as fh:
        header = [h.strip() for h in fh.readline().removeprefix("\ufeff").rstrip("\r\n").split("\t")]
    if "exp_id" not in header or "status" not in header:
        raise ImportFormatError(f"{root / 'results.tsv'} has no exp_id/status header; not a release results.tsv")
    field_name, field_rule = infer_score_field(score_field, header, best, tree_header)
    table = read_table(root / "results.tsv", _kinds, _check(tree, field_name))
    named = best.get("task") if isinstance(best.get("task"), str) and best.get("task") else None
    rel = Release(root, task or named or _task_name(root), table.header, [], field_name, field_rule, True, "", None, None,
                  len(table.records), [c for c in table.header if c not in NATIVE and c != field_name],
                  problems=problems + table.problems)
    rel.rows = _rows(table, field_name, tree, rel)
    _account(rel, table, tree_ids)
    best_exp = parse_exp(str(best.get("exp_id") or "")) if best else None
    best_score, _ok = parse_float(str(best.get(field_name, ""))) if best else (None, True)
    rel.lower_is_better, rel.direction_rule = infer_direction(
        lower_is_better, best, best_score, best_exp, rel.rows, rel.problems)
    replay_keeps(rel.rows, rel.lower_is_better, rel.problems)
    rel.best_exp_id, rel.best_score = choose_best(rel.rows, rel.lower_is_better, best_exp, best_score, rel.problems)
    return rel
