"""The files of earlier trials: listing, reading and diffing snapshots, and rebasing onto one.

Plain, synchronous code over `lineage.snapshots` (no MCP); the snapshot server wraps it.
Lineage off: reads and diffs are refused (`HiddenError`), and a rebase reaches only the best.
Paths inside a snapshot are checked by `check_relpath` before any lookup.
"""

from __future__ import annotations

from lineage.models import Trial, TrialStatus
from servers.app import trials
from servers.exceptions import HiddenError, RequestError
from servers.models import RebaseResult, SnapshotDiffInfo, SnapshotFile, SnapshotListing, SnapshotText
from servers.names import ref
from servers.app.runtime import SearchRuntime
from servers.app.workspace import check_relpath, slice_text

REBASE_STATUSES = (TrialStatus.KEEP, TrialStatus.BASELINE)


def _snapshot(rt: SearchRuntime, specialist: str, exp_id: int) -> tuple[Trial, str]:
    if not rt.config.lineage:
        raise HiddenError("snapshot reads and diffs are hidden in this arm (the search runs with the lineage "
                          f"off); work from your own workspace, or {ref('rebase_to')} the current best")
    trials.ensure_exists(rt, exp_id)
    t = trials.get_visible(rt, specialist, exp_id)
    if not t.snapshot:
        raise RequestError(f"exp {exp_id} has no stored files (rows imported from a release keep none)")
    return t, t.snapshot


def list_files(rt: SearchRuntime, specialist: str, exp_id: int) -> SnapshotListing:
    _, digest = _snapshot(rt, specialist, exp_id)
    entries = rt.snapshots.list_files(digest)
    return SnapshotListing(exp_id=exp_id, files=[SnapshotFile(path=e.path, bytes=e.size) for e in entries[:2000]])


def read(rt: SearchRuntime, specialist: str, exp_id: int, path: str, offset: int, limit: int) -> SnapshotText:
    rel = check_relpath(path, rt.limits)
    _, digest = _snapshot(rt, specialist, exp_id)
    data = rt.snapshots.read_file(digest, rel, limit=rt.limits.max_file_bytes * 8)
    part = slice_text(rel, data, offset, limit, rt.limits)
    return SnapshotText(exp_id=exp_id, **part.model_dump())


def diff(rt: SearchRuntime, specialist: str, exp_id: int, base_exp: int | None, max_chars: int) -> SnapshotDiffInfo:
    """What `exp_id` changed against `base_exp` (default: its parent)."""
    t, new = _snapshot(rt, specialist, exp_id)
    if base_exp is None:
        if t.parent_exp is None:
            raise RequestError(f"exp {exp_id} has no parent; give base_exp to compare against")
        base_exp = t.parent_exp
    _, old = _snapshot(rt, specialist, base_exp)
    d = rt.snapshots.diff(old, new, max_lines=max(10, max_chars // 20), max_bytes=max_chars)
    return SnapshotDiffInfo(exp_a=base_exp, exp_b=exp_id, files_changed=d.files_changed[:500], diff=d.text,
                            truncated=d.truncated)


def rebase(rt: SearchRuntime, specialist: str, exp_id: int) -> RebaseResult:
    """Replace the caller's workspace by the files of `exp_id` (a kept trial; lineage off: the best)."""
    t = trials.ensure_exists(rt, exp_id)
    best = rt.search().best_exp_id
    if not rt.config.lineage and exp_id != best:
        raise HiddenError(f"with the lineage off you can rebase only to the current best, exp {best}")
    if t.status not in REBASE_STATUSES:
        raise RequestError(
            f"exp {exp_id} is {t.status.value}; rebase only to a kept trial (keep or baseline), such as the "
            f"current best exp {best} (see {ref('get_leaderboard')})"
        )
    if not t.snapshot:
        raise RequestError(f"exp {exp_id} has no stored files (rows imported from a release keep none)")
    files = rt.workspace(specialist).rebase(t.snapshot, exp_id)
    rt.store.record_event(rt.search_id, "rebase", specialist=specialist, exp_id=exp_id)
    return RebaseResult(parent_exp=exp_id, files=files[:2000],
                        message=f"your workspace now holds exp {exp_id:03d}'s files; your next submission's "
                                f"parent is exp {exp_id:03d}. Unsaved changes were replaced.")
