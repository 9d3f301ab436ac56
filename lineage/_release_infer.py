"""What an import infers from a release's data: the score column, the direction, the keeps
of rows whose source status was only "valid", and the best. Each rule is written out here.

Score field (first rule that decides):
  1. `--score-field`;
  2. a numeric field of best.json that is also a results.tsv column;
  3. tree.tsv's column after `status` (the reference harness writes the score there);
  4. results.tsv's column after `status`, when it is not a native column.

Direction (`lower_is_better`; first rule that decides; later rules that disagree are reported):
  1. `--lower-is-better` / `--higher-is-better`;
  2. best.json's `lower_is_better` (written by our own export);
  3. best.json's score against the other kept rows and the baseline: the smallest → lower is
     better, the largest → higher is better;
  4. the signs of the keeps' deltas: all negative → lower, all positive → higher;
  5. the keeps in exp order (baseline first): strictly decreasing → lower, increasing → higher.
  None decides → the import stops and asks for the flag.

Keeps replayed: rows whose source status is VALID/OK/BORDERLINE (the reference classifier's
"valid and scored") become keep iff strictly better than the best so far (the reference
harness's rule), in exp order; the row's `decision` says so. A valid row without a score
becomes `crash` and is reported.

Best: best.json's exp when that row was imported (its score, or best.json's if the row has
none; a mismatch is reported); otherwise the best scored keep (or baseline) in the direction,
ties to the smaller exp id.
"""

from __future__ import annotations

import itertools
from typing import Any

from lineage._release_cells import NATIVE, RowResult
from lineage._tsv import Problem
from lineage.exceptions import ImportFormatError

NOT_SCORES = frozenset({"exp_id", "delta_vs_prev", "delta_vs_best", "expected_delta", "timestamp"})


def infer_score_field(given: str | None, header: list[str], best: dict[str, Any],
                      tree_header: list[str]) -> tuple[str, str]:
    """(score column, the rule that chose it)."""
    if given:
        if given not in header:
            raise ImportFormatError(f"--score-field {given!r} is not a column of results.tsv ({', '.join(header)})")
        return given, "given"
    numeric = [k for k, v in best.items() if isinstance(v, int | float) and not isinstance(v, bool)
               and k in header and k not in NOT_SCORES]
    if len(numeric) == 1:
        return numeric[0], "best.json's numeric field"
    for cols, rule in ((tree_header, "tree.tsv's column after status"), (header, "results.tsv's column after status")):
        if "status" in cols and cols.index("status") + 1 < len(cols):
            name = cols[cols.index("status") + 1].strip()
            if name in header and name not in NATIVE:
                return name, rule
    raise ImportFormatError("cannot tell which column holds the score; pass --score-field NAME")


def _by_best_json(best_score: float | None, best_exp: int | None, rows: list[RowResult]) -> bool | None:
    if best_score is None:
        return None
    others = [r.data["score"] for r in rows if r.data["status"] in ("keep", "baseline")
              and r.data.get("score") is not None and r.exp_id != best_exp]
    if not others:
        return None
    if best_score <= min(others) and best_score < max(others):
        return True
    if best_score >= max(others) and best_score > min(others):
        return False
    return None


def _by_deltas(rows: list[RowResult]) -> bool | None:
    deltas = [r.data.get("delta") for r in rows if r.data["status"] == "keep"]
    deltas = [d for d in deltas if d]
    if deltas and all(d < 0 for d in deltas):
        return True
    if deltas and all(d > 0 for d in deltas):
        return False
    return None


def _by_sequence(rows: list[RowResult]) -> bool | None:
    seq = [r.data["score"] for r in sorted(rows, key=lambda r: r.exp_id)
           if r.data["status"] in ("keep", "baseline") and r.data.get("score") is not None]
    if len(seq) < 2:
        return None
    if all(b < a for a, b in itertools.pairwise(seq)):
        return True
    if all(b > a for a, b in itertools.pairwise(seq)):
        return False
    return None


def infer_direction(given: bool | None, best: dict[str, Any], best_score: float | None, best_exp: int | None,
                    rows: list[RowResult], problems: list[Problem]) -> tuple[bool, str]:
    """(lower_is_better, the rule that decided); raises if nothing decides."""
    flag = best.get("lower_is_better")
    rules = [
        ("given", given),
        ("best.json's lower_is_better", flag if isinstance(flag, bool) else None),
        ("best.json's score against the keeps", _by_best_json(best_score, best_exp, rows)),
        ("the signs of the keeps' deltas", _by_deltas(rows)),
        ("the order of the keeps' scores", _by_sequence(rows)),
    ]
    decided = [(name, v) for name, v in rules if v is not None]
    if not decided:
        raise ImportFormatError(
            "cannot infer whether lower or higher scores are better; pass --lower-is-better or --higher-is-better")
    name, value = decided[0]
    for other, v in decided[1:]:
        if v != value and name != "given":
            problems.append(Problem("search", "direction", f"{other} disagrees with {name}; used {name}"))
    return value, name


def replay_keeps(rows: list[RowResult], lower: bool, problems: list[Problem]) -> None:
    """Decide keep/discard for rows the source only called valid (see the module docstring)."""
    best: tuple[int, float] | None = None
    for r in sorted(rows, key=lambda r: r.exp_id):
        d = r.data
        if d["status"] in ("keep", "baseline") and d.get("score") is not None:
            best = (r.exp_id, d["score"])
        if d["status"] != "valid":
            continue
        if d.get("score") is None:
            d["status"] = "crash"
            problems.append(Problem(f"exp {r.exp_id:03d}", "status", "valid in the source but no score; imported as crash"))
            continue
        better = best is None or (d["score"] < best[1] if lower else d["score"] > best[1])
        ref = f"exp {best[0]:03d}" if best else "no earlier best"
        d["status"] = "keep" if better else "discard"
        d["decision"] = (f"source status valid: {'kept' if better else 'not kept'} by replaying the reference "
                         f"rule (strictly better than the best so far, {ref})")
        if better:
            best = (r.exp_id, d["score"])


def choose_best(rows: list[RowResult], lower: bool, best_exp: int | None, best_score: float | None,
                problems: list[Problem]) -> tuple[int | None, float | None]:
    """(best exp id, best score) as the module docstring says."""
    by_id = {r.exp_id: r for r in rows}
    if best_exp is not None and best_exp in by_id:
        score = by_id[best_exp].data.get("score")
        if score is not None and best_score is not None and abs(score - best_score) > 1e-9 * max(1.0, abs(score)):
            problems.append(Problem(f"exp {best_exp:03d}", "best.json",
                                    f"best.json says {best_score} but the row says {score}; used the row"))
        return best_exp, score if score is not None else best_score
    if best_exp is not None:
        problems.append(Problem("best.json", "exp_id", f"exp {best_exp} is not among the imported rows; "
                                "best inferred from the keeps"))
    scored = [r for r in rows if r.data["status"] in ("keep", "baseline") and r.data.get("score") is not None]
    if not scored:
        return None, None
    top = min(scored, key=lambda r: ((r.data["score"] if lower else -r.data["score"]), r.exp_id))
    return top.exp_id, top.data["score"]
