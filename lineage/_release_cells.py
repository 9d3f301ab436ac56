"""The release format's columns, both ways: a trial → its cells, and cells → a trial's fields.

Native columns map to `Trial` fields; every other column is kept as its raw string in
`Trial.extra` (numeric ones also in `metrics`). For native columns whose text is not the value
itself (numbers, ids, timestamps, statuses, snapshot paths) the source's raw string is kept in
`extra` too, and export writes it back when it still reads as the trial's value: an imported
search re-exports its source strings verbatim, while a changed value is written fresh.

Formats written fresh: exp ids zero-padded to a common width (3, or more above 999, so that
text order is numeric order within one file); scores `%.6f` when that is exact, else `repr`;
deltas likewise with a sign; timestamps `YYYY-MM-DDTHH:MM:SSZ` in UTC.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lineage._tsv import Problem, parse_exp
from lineage.models import Trial, TrialStatus

NATIVE_LAYOUT = (
    "exp_id", "timestamp", "specialist", "parent_exp", "baseline_exp", "domain", "hypothesis",
    "expected_delta", "status", "{score}", "delta_vs_best", "margin", "artifact_bytes", "metrics",
    "timings", "flags", "failure", "decision", "snapshot_path", "notes",
)
TEXT_FIELDS = ("specialist", "hypothesis", "notes", "failure", "decision")
NATIVE = frozenset(NATIVE_LAYOUT) - {"domain", "{score}"} | {"delta"}
RAW_KEPT = frozenset({
    "exp_id", "timestamp", "parent_exp", "baseline_exp", "expected_delta", "status", "delta_vs_best",
    "delta", "margin", "artifact_bytes", "snapshot_path",
})  # native columns whose source text is kept in `extra` for a verbatim re-export
_OURS = {s.value for s in TrialStatus if s.is_finished()}
_RAW_STATUS = {
    "dq_size": "size_blocked", "dq_train": "train_budget_overrun", "timeout": "train_budget_overrun",
    "dq_eval": "eval_budget_overrun", "incomplete": "crash", "harness_abort": "infra_error",
}
VALID_RAW = frozenset({"valid", "ok", "borderline"})  # valid and scored; keep decided by replay
_UNFINISHED = frozenset({"queued", "running"})


def known_status(raw: str) -> bool:
    s = raw.strip().lower()
    return s in _OURS or s in _RAW_STATUS or s in VALID_RAW or s in _UNFINISHED


def map_status(raw: str) -> tuple[str | None, str]:
    """(our status, a note naming the source status if it differs); None when unknown.

    Valid raw statuses (VALID/OK/BORDERLINE) return "valid": the importer replays the keep rule.
    """
    s = raw.strip().lower()
    if s in _OURS:
        return s, ""
    if s in _RAW_STATUS:
        return _RAW_STATUS[s], f"source status {raw.strip()!r} read as {_RAW_STATUS[s]}"
    if s in VALID_RAW:
        return "valid", ""
    if s in _UNFINISHED:
        return "cancelled", f"source status {raw.strip()!r}: unfinished when the run was released"
    return None, ""


def parse_float(text: str) -> tuple[float | None, bool]:
    """(value, ok): empty → (None, True); unreadable or not finite → (None, False)."""
    if not text.strip():
        return None, True
    try:
        value = float(text)
    except ValueError:
        return None, False
    return (value, True) if math.isfinite(value) else (None, False)


def parse_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def fmt_time(t: datetime | None) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC (a naive time is taken as UTC)."""
    if t is None:
        return ""
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_float(x: float | None, signed: bool = False) -> str:
    if x is None:
        return ""
    text = f"{x:+.6f}" if signed else f"{x:.6f}"
    if float(text) == x:
        return text
    return ("+" if signed and x >= 0 else "") + repr(x)


@dataclass
class RowResult:
    """One source row read into `TrialRow` fields, with what went wrong."""

    exp_id: int
    data: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    snapshot_path: str = ""


def read_row(cells: dict[str, str], score_field: str, now: datetime) -> RowResult | Problem:
    """Map one record's cells to trial fields; a `Problem` if the row cannot be a trial."""
    exp_id = parse_exp(cells.get("exp_id", ""))
    if exp_id is None:
        return Problem("row", "exp_id", f"unreadable exp id {cells.get('exp_id', '')[:40]!r}")
    label = f"exp {exp_id:03d}"
    status, note = map_status(cells.get("status", ""))
    if status is None:
        return Problem(label, "status", f"unknown status {cells.get('status', '')[:40]!r}; row not imported")
    res = RowResult(exp_id, {"exp_id": exp_id, "status": status, "extra": {}, "metrics": {}})
    d, extra = res.data, res.data["extra"]
    for name in TEXT_FIELDS:
        d[name] = cells.get(name, "")
    if note:
        d["failure"] = (d["failure"] + "; " if d["failure"] else "") + note
        if status == "cancelled":
            res.problems.append(Problem(label, "status", note + "; imported as cancelled"))
    for col, raw in cells.items():
        if col in RAW_KEPT or col == score_field:
            if raw.strip():
                extra[col] = raw
        elif col not in NATIVE:
            extra[col] = raw
    _numbers(cells, score_field, res, label)
    _ids_and_time(cells, res, label, now)
    _json_columns(cells, res, label)
    res.snapshot_path = cells.get("snapshot_path", "").strip()
    for col, raw in cells.items():
        if col not in NATIVE and col != score_field and col != "domain":
            value, ok = parse_float(raw)
            if value is not None and ok:
                d["metrics"][col] = value
    return res


def _numbers(cells: dict[str, str], score_field: str, res: RowResult, label: str) -> None:
    d = res.data
    for col, key in ((score_field, "score"), ("delta_vs_best", "delta"), ("delta", "delta"),
                     ("expected_delta", "expected_delta"), ("margin", "margin")):
        if col not in cells or (key in d and d[key] is not None):
            continue
        value, ok = parse_float(cells[col])
        d[key] = value
        if not ok:
            res.problems.append(Problem(label, col, f"not a finite number: {cells[col][:40]!r}; left empty"))
    raw = cells.get("artifact_bytes", "").strip()
    if raw:
        value, ok = parse_float(raw)
        if ok and value is not None and value == int(value):
            d["artifact_bytes"] = int(value)
        else:
            res.problems.append(Problem(label, "artifact_bytes", f"not a byte count: {raw[:40]!r}; left empty"))


def _ids_and_time(cells: dict[str, str], res: RowResult, label: str, now: datetime) -> None:
    d = res.data
    for col, key in (("parent_exp", "parent_exp"), ("baseline_exp", "best_at_finish")):
        raw = cells.get(col, "").strip()
        d[key] = parse_exp(raw) if raw else None
        if raw and d[key] is None:
            res.problems.append(Problem(label, col, f"unreadable exp id {raw[:40]!r}; left empty"))
        elif raw and not raw.isdigit():
            res.problems.append(Problem(label, col, f"{raw[:40]!r} read as exp {d[key]:03d}"))
    raw = cells.get("timestamp", "").strip()
    when = parse_time(raw) if raw else None
    if raw and when is None:
        res.problems.append(Problem(label, "timestamp", f"unreadable time {raw[:40]!r}"))
    d["created_at"] = when or now
    d["finished_at"] = when


def _json_columns(cells: dict[str, str], res: RowResult, label: str) -> None:
    for col in ("metrics", "timings"):
        raw = cells.get(col, "").strip()
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            res.data[col] = {**res.data.get(col, {}), **value}
        else:
            res.problems.append(Problem(label, col, "not a JSON object; kept as text only"))
    flags = cells.get("flags", "")
    res.data["self_reported"] = "self_reported" in flags
    res.data["unisolated"] = "unisolated" in flags


def native_header(score_field: str, extra_columns: tuple[str, ...]) -> list[str]:
    cols = [score_field if c == "{score}" else c for c in NATIVE_LAYOUT]
    return cols + [c for c in extra_columns if c not in cols]


def _raw_or(t: Trial, col: str, fresh: str, same: bool) -> str:
    raw = t.extra.get(col)
    return raw if raw is not None and same else fresh


def _same_float(raw: str | None, value: float | None) -> bool:
    return raw is not None and parse_float(raw)[0] == value


_NUMBERS = {"delta_vs_best": ("delta", True), "delta": ("delta", True), "expected_delta": ("expected_delta", False),
            "margin": ("margin", False)}
_IDS = {"parent_exp": "parent_exp", "baseline_exp": "best_at_finish"}


def number_cell(raw: str | None, value: float | None, signed: bool) -> str:
    """A number column: the source text when it still reads as `value`, else written fresh."""
    return raw if raw is not None and _same_float(raw, value) else fmt_float(value, signed)


def cell(t: Trial, col: str, score_field: str, width: int, snapshot_path: str) -> str:
    """The text of column `col` for trial `t` (see the module docstring for the rules)."""
    raw = t.extra.get(col)
    if col == "exp_id":
        return _raw_or(t, col, f"{t.exp_id:0{width}d}", parse_exp(raw or "") == t.exp_id and len(raw or "") >= width)
    if col in TEXT_FIELDS:
        return getattr(t, col)
    if col == score_field:
        return number_cell(raw, t.score, False)
    if col in _NUMBERS:
        name, signed = _NUMBERS[col]
        return number_cell(raw, getattr(t, name), signed)
    if col in _IDS:
        value = getattr(t, _IDS[col])
        fresh = "" if value is None else f"{value:0{width}d}"
        return raw if raw is not None and parse_exp(raw) == value else fresh
    return _other_cell(t, col, raw, snapshot_path)


def _other_cell(t: Trial, col: str, raw: str | None, snapshot_path: str) -> str:
    if col == "timestamp":
        when = t.finished_at or t.created_at
        return _raw_or(t, col, fmt_time(when), raw is not None and parse_time(raw) == when)
    if col == "status":
        mapped = map_status(raw or "")[0]
        same = mapped == t.status.value or (mapped == "valid" and t.status.value in ("keep", "discard"))
        return _raw_or(t, col, t.status.value, same)
    if col == "snapshot_path":
        return snapshot_path or (raw or "")
    if col == "artifact_bytes":
        fresh = "" if t.artifact_bytes is None else str(t.artifact_bytes)
        return _raw_or(t, col, fresh, _same_float(raw, t.artifact_bytes))
    if col in ("metrics", "timings"):
        value = getattr(t, col)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str) if value else ""
    if col == "flags":
        return ",".join(f for f in ("self_reported", "unisolated") if getattr(t, f))
    if col == "domain":
        return raw if raw is not None else t.specialist
    return raw or ""
