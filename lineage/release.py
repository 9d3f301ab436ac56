"""Release artifacts: export a search to the published layout, and import that layout back.

Layout (the reference harness's `blackboard/`):

    results.tsv            every row, quoted TSV (see `lineage/_tsv.py`, `lineage/_release_cells.py`)
    tree.tsv               the research tree in preorder (see `lineage/_render_tree.py`)
    best.json              the current best (`exp_id` as a zero-padded string, the score under its name)
    LEADERBOARD.md         `render_leaderboard`
    KNOWLEDGE.md           `render_knowledge`
    snapshots/<exp>_<specialist>/   the files each trial submitted, for every trial with a snapshot

Import never invents a value: what it cannot read is reported in `ImportReport.problems`
(row, field, why) and left empty; rows it put back together are listed with how. It never loses
a row quietly: when a row of results.tsv or tree.tsv cannot be imported (see
`lineage/_release_import.py`), the import stops with `ImportLossError` naming every such row and
writes nothing, unless `allow_loss` is given; then the rest is imported and `ImportReport.lost`
lists each lost row (row, where, why). Inference
rules (score field, direction, keeps, best) are in `lineage/_release_infer.py`. The task name is
`--task`, else best.json's `task` (our exports), else the directory's name (`blackboard/` →
its parent; a `published-` prefix dropped). The search is created with arm "imported", a zero
noise margin (the source's keep decisions are kept as they are), the roster in order of first
appearance, and `extra_columns` = the source columns that are not native fields. A row without
a timestamp gets the import time as `created_at` and no `finished_at`. Export writes the source
header when the search was imported (recorded in its "import" event), else the native layout.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lineage._release_cells import RowResult, cell, fmt_float, fmt_time, native_header
from lineage._release_import import Release, read_release
from lineage._render_knowledge import render_knowledge
from lineage._render_tree import exp_width, iter_trials, max_exp_id, render_tree_tsv
from lineage._tsv import Problem, utf8_safe, write_tsv
from lineage.exceptions import ImportLossError, LineageError, SearchExistsError, SnapshotError
from lineage.models import NoiseMargin, Search, SearchConfig, Trial
from lineage.render import render_leaderboard
from lineage.state import StateDir

__all__ = ["ExportReport", "ImportReport", "export_search", "import_release"]


@dataclass
class ImportReport:
    """What an import did: counts, inferred settings, rows recovered and problems."""

    source: str
    state: str
    search_id: str
    task: str
    score_field: str
    score_field_rule: str
    lower_is_better: bool
    direction_rule: str
    rows_read: int
    rows_imported: int
    best_exp_id: int | None
    best_score: float | None
    snapshots_imported: int
    recovered: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lost: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExportReport:
    """What an export wrote."""

    out: str
    rows: int
    snapshots: int
    files: list[str]
    problems: list[str] = field(default_factory=list)


def import_release(
    src: Path, state_path: Path, *, lower_is_better: bool | None = None, search_id: str | None = None,
    database_url: str | None = None, task: str | None = None, score_field: str | None = None,
    allow_loss: bool = False,
) -> ImportReport:
    """Import a release-artifact directory into a new search at `state_path`.

    Raises `ImportFormatError` when `src` is not a release layout or a setting cannot be
    inferred, `ImportLossError` when rows would be lost and `allow_loss` is false (nothing is
    written then), `SearchExistsError` when `state_path` already holds a search.
    """
    if StateDir.exists(state_path):
        raise SearchExistsError(f"{state_path} already holds a search; import into a new --state directory")
    rel = read_release(Path(src), lower_is_better=lower_is_better, score_field=score_field, task=task)
    if rel.lost and not allow_loss:
        raise _loss_error(rel)
    roster = tuple(dict.fromkeys(r.data["specialist"] for r in rel.rows if r.data["status"] != "baseline"))
    config = SearchConfig(
        task=rel.task, score_field=rel.score_field, lower_is_better=rel.lower_is_better, roster=roster,
        arm="imported", margin=NoiseMargin(), extra_columns=tuple(rel.extra_columns),
    )
    before = {p.name for p in Path(state_path).iterdir()} if Path(state_path).is_dir() else None
    state = StateDir.create(state_path, config, search_id=search_id, database_url=database_url)
    try:
        snaps = _import_snapshots(rel.root, rel.rows, state, rel.problems)
        baseline = next((r for r in rel.rows if r.exp_id == 0 and r.data["status"] == "baseline"), None)
        state.store.import_trials(
            state.search_id, [r.data for r in rel.rows], best_exp_id=rel.best_exp_id, best_score=rel.best_score,
            baseline_score=baseline.data.get("score") if baseline else None,
        )
        report = ImportReport(
            str(rel.root), str(state_path), state.search_id, rel.task, rel.score_field, rel.score_field_rule,
            rel.lower_is_better, rel.direction_rule, rel.rows_read, len(rel.rows), rel.best_exp_id,
            rel.best_score, snaps, rel.recovered, rel.problems, rel.lost,
        )
        state.store.record_event(state.search_id, "import", payload={
            "source": str(rel.root), "header": rel.header, "rows_imported": len(rel.rows),
            "recovered": len(rel.recovered), "problems": len(rel.problems), "lost": [p.row for p in rel.lost]})
        return report
    except BaseException:
        state.close()
        _undo(Path(state_path), before)
        raise
    finally:
        state.close()


def _loss_error(rel: Release) -> ImportLossError:
    names = ", ".join(p.row for p in rel.lost)
    return ImportLossError(
        f"{len(rel.lost)} row(s) of {rel.root} would be lost: {names}; repair them in results.tsv and import "
        f"again, or pass --allow-loss to import the other {len(rel.rows)} rows and list the lost ones", rel.lost)


def _undo(path: Path, before: set[str] | None) -> None:
    """Remove what a failed import wrote (entries absent `before`), so --state can be reused."""
    if before is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in path.iterdir():
        if entry.name not in before:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _snapshot_dirs(root: Path, r: RowResult) -> tuple[list[Path], bool]:
    """Existing snapshot paths of a row inside `root/snapshots` (its snapshot_path, else
    `snapshots/<exp>_<specialist>`), and whether the row named one."""
    raw, spec = r.snapshot_path, r.data["specialist"]
    names = [raw] if raw else []
    names += [f"snapshots/{r.exp_id:03d}_{spec}", f"snapshots/{r.data['extra'].get('exp_id', '').strip()}_{spec}"]
    found = []
    for name in names:
        path = (root / name).resolve()
        if path.is_relative_to(root.resolve() / "snapshots") and path.exists():
            found.append(path)
    return found, bool(raw)


def _import_snapshots(root: Path, rows: list[RowResult], state: StateDir, problems: list[Problem]) -> int:
    """Store every row's snapshot found in the release; report the ones named but missing."""
    count = 0
    for r in rows:
        found, named = _snapshot_dirs(root, r)
        label = f"exp {r.exp_id:03d}"
        if not found:
            if named:
                problems.append(Problem(label, "snapshot_path", f"{r.snapshot_path[:80]!r} is not in the release; "
                                        "the trial has no snapshot"))
            continue
        try:
            if found[0].is_dir():
                r.data["snapshot"] = state.snapshots.put_tree(found[0])
            else:
                r.data["snapshot"] = state.snapshots.put_files({found[0].name: found[0].read_bytes()})
            count += 1
        except (SnapshotError, OSError) as exc:
            problems.append(Problem(label, "snapshot_path", f"unreadable snapshot: {exc}"))
    return count


# ---------------------------------------------------------------------------------- export
def _header(state: StateDir, search: Search) -> list[str]:
    events = state.store.list_events(search.id, limit=1)
    if events and events[0].kind == "import" and isinstance(events[0].payload.get("header"), list):
        return [str(h) for h in events[0].payload["header"]]
    return native_header(search.config.score_field, search.config.extra_columns)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unknown"


def export_search(state: StateDir, out: Path) -> ExportReport:
    """Write the search's release artifacts into `out` (absent or empty)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LineageError(f"{out} is not an empty directory; choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    store, search = state.store, state.search
    score_field = search.config.score_field
    header = _header(state, search)
    width = exp_width(max_exp_id(store, search.id))
    report = ExportReport(str(out), 0, 0, [])

    def rows():  # type: ignore[no-untyped-def]
        for t in iter_trials(store, search.id):
            path = _export_snapshot(state, t, out, width, report)
            yield [cell(t, c, score_field, width, path) for c in header]

    report.rows = write_tsv(out / "results.tsv", header, rows())
    (out / "tree.tsv").write_text("".join(line + "\n" for line in render_tree_tsv(
        store, search.id, score_field, width=width)), encoding="utf-8")
    best = store.get_trial(search.id, search.best_exp_id) if search.best_exp_id is not None else None
    body = json.dumps(_best_json(search, best, width), indent=2, ensure_ascii=False)
    (out / "best.json").write_text(utf8_safe(body) + "\n", encoding="utf-8")
    (out / "LEADERBOARD.md").write_text(render_leaderboard(store, search.id), encoding="utf-8")
    (out / "KNOWLEDGE.md").write_text(render_knowledge(store, search.id), encoding="utf-8")
    report.files = sorted(p.name for p in out.iterdir() if p.is_file())
    return report


def _export_snapshot(state: StateDir, t: Trial, out: Path, width: int, report: ExportReport) -> str:
    if not t.snapshot:
        return ""
    rel = f"snapshots/{t.exp_id:0{width}d}_{_slug(t.specialist)}"
    try:
        state.snapshots.materialize(t.snapshot, out / rel)
    except (SnapshotError, OSError) as exc:
        report.problems.append(f"exp {t.exp_id:03d}: snapshot {t.snapshot[:12]} not exported: {exc}")
        return ""
    report.snapshots += 1
    return rel


def _best_json(search: Search, best: Trial | None, width: int) -> dict[str, Any]:
    """best.json as the reference writes it, plus task, score_field and lower_is_better
    (without a best: `exp_id` null and those three, so a re-import knows the direction)."""
    meta = {"task": search.config.task, "score_field": search.config.score_field,
            "lower_is_better": search.config.lower_is_better}
    if best is None:
        return {"exp_id": None, **meta}
    snap = best.extra.get("snapshot_path", "")
    if best.snapshot:
        snap = f"snapshots/{best.exp_id:0{width}d}_{_slug(best.specialist)}"
    return {
        "exp_id": f"{best.exp_id:0{width}d}", "specialist": best.specialist,
        "domain": best.extra.get("domain", best.specialist), "hypothesis": best.hypothesis,
        search.config.score_field: best.score if best.score is not None else search.best_score,
        "delta_vs_prev": fmt_float(best.delta, signed=True),
        "timestamp": best.extra.get("timestamp") or fmt_time(best.finished_at or best.created_at),
        "snapshot_path": snap, **meta,
    }

