"""File helpers that never follow a trial's symlinks nor open its FIFOs.

Everything a trial wrote is hostile: copies keep only regular files and directories
(symlinks, devices, sockets and FIFOs are skipped), sizes are counted with `lstat`, and
removal never leaves the tree.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_DEPTH = 64
ENTRY_BYTES = 4096  # every file or dir costs at least a block, so empty files are not free
ARTIFACT_ENTRY_BYTES = 64  # what an artifact pays per file or dir, beside its name and bytes


def safe_copy(src: Path, dst: Path, *, limit: int | None = None, depth: int = 0) -> int:
    """Copy regular files and dirs from `src` (file or dir) to `dst`; return bytes copied.

    Symlinks and special files are skipped, and so is anything nested deeper than
    `MAX_DEPTH`. Stops copying files once `limit` bytes were copied (what is over the limit
    is left out, never partially written).
    """
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        if limit is not None and st.st_size > limit:
            return 0
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, 0o755 if st.st_mode & 0o111 else 0o644)
        return st.st_size
    if not stat.S_ISDIR(st.st_mode) or depth > MAX_DEPTH:
        return 0
    dst.mkdir(parents=True, exist_ok=True)
    os.chmod(dst, 0o755)
    total = 0
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        left = None if limit is None else limit - total
        total += safe_copy(Path(entry.path), dst / entry.name, limit=left, depth=depth + 1)
    return total


def artifact_size(path: Path) -> tuple[int, int]:
    """(bytes, entries) of an artifact directory, counted so that no payload rides for free.

    Bytes are every regular file's bytes, plus the UTF-8 bytes of every entry's path relative
    to `path`, plus `ARTIFACT_ENTRY_BYTES` per entry (file, dir, or anything else): data hidden
    in file names, in empty files or in a deep tree of directories is counted like data in a
    file. Entries are every file and dir below `path` (not `path` itself).
    """
    root = str(path)
    total = entries = 0
    for p, st in walk_stats(path):
        entries += 1
        total += ARTIFACT_ENTRY_BYTES + len(os.path.relpath(p, root).encode("utf-8", "surrogateescape"))
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total, entries


def disk_usage(path: Path) -> int:
    """Bytes `path` costs: allocated or apparent size, at least `ENTRY_BYTES` per entry."""
    return sum(
        max(st.st_blocks * 512, st.st_size if stat.S_ISREG(st.st_mode) else 0, ENTRY_BYTES)
        for _, st in walk_stats(path)
    )


def walk_stats(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every entry below `root`, depth first; never follows links, skips errors."""
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(e.path)
                    yield e.path, st
        except OSError:
            continue


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give the tree to the trial's uid (lchown: links are not followed)."""
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def remove_tree(path: Path) -> None:
    """Remove a scratch tree, even one a trial made unwritable for its owner."""
    if not os.path.lexists(path):
        return

    def _fix(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    shutil.rmtree(path, onerror=_fix)
