"""Content-addressed snapshots of the trees that trials submitted.

Layout under `root` (the search's `<state>/snapshots/`):

    blobs/<2 hex>/<sha256>     one file's bytes, named by their sha256 (shared by every trial)

A snapshot id is the sha256 of its canonical manifest (sorted `path NUL blob NUL mode` lines).
The manifest rows live in the lineage database (`snapshot_file`), written in one transaction,
insert-if-absent, so putting the same tree twice is free and returns the same id.

On PostgreSQL the blobs also go into the database (`snapshot_blob`, one row per distinct
content, written in the manifest's transaction), so a worker on another host needs only the
database URL: its `SnapshotStore` keeps a local cache under its own `root` and fetches what the
cache lacks from the database. SQLite lineages are on one host and keep blobs on disk only.

Durability: blobs are written to a temporary file and renamed into place, without fsync (as the
SQLite store runs with `synchronous=NORMAL`): a crash of the process never leaves a partial blob
under its final name; every read checks the blob's size and sha256.

Paths are POSIX relative paths, checked on every entry point: no absolute paths, no `..`, no
empty or `.` components, no backslashes or NUL bytes.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from lineage._engine import run_tx
from lineage.exceptions import SnapshotError, SnapshotNotFoundError, SnapshotPathError
from lineage.sql import SqlLineageStore
from lineage.tables import SnapshotBlobRow, SnapshotFileRow

SKIP_DIRS = frozenset({"__pycache__", ".git"})
SKIP_SUFFIXES = (".pyc",)
MAX_DIFF_FILE_BYTES = 2_000_000  # larger text files are summarised, not diffed


@dataclass(frozen=True)
class SnapshotEntry:
    """One file of a snapshot."""

    path: str
    size: int
    blob: str
    mode: int


@dataclass(frozen=True)
class SnapshotDiff:
    """A bounded unified diff between two snapshots."""

    text: str
    truncated: bool
    files_changed: list[str]


def check_path(path: str) -> str:
    """Return `path` if it is a safe POSIX relative path, else raise `SnapshotPathError`."""
    if not isinstance(path, str) or not path:
        raise SnapshotPathError("a snapshot path must be a non-empty relative path")
    if "\x00" in path or "\\" in path:
        raise SnapshotPathError(f"{path!r}: NUL bytes and backslashes are not allowed in paths")
    if path.startswith("/"):
        raise SnapshotPathError(f"{path!r}: absolute paths are not allowed; use a path relative to the tree")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SnapshotPathError(f"{path!r}: '..', '.' and empty components are not allowed")
    return path


def _mode(st_mode: int) -> int:
    """Keep only what matters to a recipe: executable or not (as git does)."""
    return 0o755 if st_mode & 0o111 else 0o644


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(entries: Iterable[tuple[str, str, int]]) -> str:
    """The snapshot id: sha256 of the sorted (path, blob, mode) manifest."""
    lines = sorted(f"{p}\x00{b}\x00{m:o}\n" for p, b, m in entries)
    return _sha("".join(lines).encode())


class SnapshotStore:
    """Blobs on disk, manifests in the lineage database. Safe for many processes."""

    def __init__(
        self, root: Path, store: SqlLineageStore, *, max_files: int = 20_000,
        max_total_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes

    # ---------------------------------------------------------------- writing
    def put_tree(self, src: Path, include: Iterable[str] | None = None) -> str:
        """Snapshot the files under `src`; returns the snapshot id.

        `include`: fnmatch globs on the relative POSIX path (`*` also matches `/`); None keeps
        every file.

        Skips `__pycache__/`, `.git/` and `*.pyc`. A symlink is stored as the file it points to
        if that lies inside `src`; directory symlinks inside `src` are not followed (their
        content is already in the tree). Raises `SnapshotPathError` for symlinks that leave
        `src`, special files (sockets, fifos, devices), or a tree over the size limits.
        """
        root = Path(src)
        if not root.is_dir():
            raise SnapshotPathError(f"{root} is not a directory")
        patterns = list(include) if include is not None else None
        files: dict[str, tuple[Path, int]] = {}
        for rel, path in self._walk(root.resolve()):
            if patterns is not None and not any(fnmatch.fnmatchcase(rel, p) for p in patterns):
                continue
            files[rel] = (path, _mode(path.stat().st_mode))
            if len(files) > self.max_files:
                raise SnapshotPathError(f"{root}: more than {self.max_files} files; snapshot a smaller tree")
        return self._put({rel: (p.read_bytes, mode) for rel, (p, mode) in files.items()})

    def put_files(self, files: Mapping[str, bytes], modes: Mapping[str, int] | None = None) -> str:
        """Snapshot an in-memory tree `{relative path: bytes}`."""
        if len(files) > self.max_files:
            raise SnapshotPathError(f"{len(files)} files: more than the limit of {self.max_files}")
        modes = modes or {}
        return self._put({
            check_path(p): ((lambda d=data: d), _mode(modes.get(p, 0o644))) for p, data in files.items()
        })

    def _walk(self, root: Path) -> Iterable[tuple[str, Path]]:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and self._keep_dir(root, here / d))
            for name in sorted(filenames):
                if name.endswith(SKIP_SUFFIXES):
                    continue
                path = here / name
                self._check_file(root, path)
                yield path.relative_to(root).as_posix(), path

    @staticmethod
    def _keep_dir(root: Path, path: Path) -> bool:
        if not path.is_symlink():
            return True
        if not path.resolve().is_relative_to(root):
            raise SnapshotPathError(f"{path}: a symlink that points outside the tree ({path.resolve()})")
        return False

    @staticmethod
    def _check_file(root: Path, path: Path) -> None:
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise SnapshotPathError(f"{path}: a symlink that points outside the tree ({path.resolve()})")
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise SnapshotPathError(f"{path}: a dangling symlink") from exc
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotPathError(f"{path}: not a regular file (socket, fifo or device)")

    def _put(self, files: Mapping[str, tuple[Callable[[], bytes], int]]) -> str:
        if not files:
            raise SnapshotError("nothing to snapshot: the tree holds no files")
        rows: list[dict[str, object]] = []
        datas: dict[str, bytes] = {}
        total = 0
        for rel in sorted(files):
            read, mode = files[rel]
            data = read()
            total += len(data)
            if total > self.max_total_bytes:
                raise SnapshotPathError(f"the tree exceeds {self.max_total_bytes} bytes; snapshot a smaller tree")
            blob = self._write_blob(data)
            if self.in_database:
                datas[blob] = data
            rows.append({"path": rel, "blob": blob, "size": len(data), "mode": mode})
        digest = manifest_digest((r["path"], r["blob"], r["mode"]) for r in rows)  # type: ignore[misc]
        for row in rows:
            row["snapshot"] = digest
        run_tx(self.store.engine, lambda s: self._insert(s, digest, rows, datas), write=True)
        return digest

    @property
    def in_database(self) -> bool:
        """Whether blobs go into the database too (a PostgreSQL lineage; see the module docstring)."""
        return self.store.dialect == "postgresql"

    def _insert(self, s: Session, digest: str, rows: list[dict[str, object]], datas: dict[str, bytes]) -> None:
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        if datas:  # also for a manifest already there: one stored before blobs went to the database
            have = set(s.exec(select(SnapshotBlobRow.blob).where(col(SnapshotBlobRow.blob).in_(list(datas)))))
            missing = [{"blob": b, "size": len(d), "data": d} for b, d in datas.items() if b not in have]
            if missing:
                stmt = dialect.insert(SnapshotBlobRow.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
                s.connection().execute(stmt, missing)
        if s.exec(select(SnapshotFileRow.path).where(SnapshotFileRow.snapshot == digest).limit(1)).first():
            return
        stmt = dialect.insert(SnapshotFileRow.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
        s.connection().execute(stmt, rows)

    def _blob_path(self, blob: str) -> Path:
        return self.root / "blobs" / blob[:2] / blob

    def _write_blob(self, data: bytes) -> str:
        blob = _sha(data)
        path = self._blob_path(blob)
        try:
            if path.stat().st_size == len(data):
                return blob  # deduplicated
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return blob

    # ---------------------------------------------------------------- reading
    def exists(self, snapshot: str) -> bool:
        """Whether the database holds this snapshot's manifest."""
        stmt = select(SnapshotFileRow.path).where(SnapshotFileRow.snapshot == snapshot).limit(1)
        return run_tx(self.store.engine, lambda s: s.exec(stmt).first() is not None, write=False)

    def list_files(self, snapshot: str) -> list[SnapshotEntry]:
        """The snapshot's files, sorted by path. Raises `SnapshotNotFoundError`."""
        stmt = select(SnapshotFileRow).where(SnapshotFileRow.snapshot == snapshot).order_by(SnapshotFileRow.path)
        rows = run_tx(
            self.store.engine,
            lambda s: [SnapshotEntry(r.path, r.size, r.blob, r.mode) for r in s.exec(stmt)],
            write=False,
        )
        if not rows:
            raise SnapshotNotFoundError(f"no snapshot {snapshot!r} in this search")
        return rows

    def _entry(self, snapshot: str, path: str) -> SnapshotEntry:
        check_path(path)
        stmt = select(SnapshotFileRow).where(SnapshotFileRow.snapshot == snapshot, SnapshotFileRow.path == path)
        row = run_tx(self.store.engine, lambda s: s.exec(stmt).first(), write=False)
        if row is None:
            if not self.exists(snapshot):
                raise SnapshotNotFoundError(f"no snapshot {snapshot!r} in this search")
            raise SnapshotPathError(f"{path!r} is not a file of snapshot {snapshot[:12]}; list its files first")
        return SnapshotEntry(row.path, row.size, row.blob, row.mode)

    def _blob(self, entry: SnapshotEntry) -> bytes:
        try:
            data = self._blob_path(entry.blob).read_bytes()
        except FileNotFoundError as exc:
            fetched = self._fetch([entry.blob]) if self.in_database else {}
            if entry.blob not in fetched:
                where = f"{self.root} and from the database" if self.in_database else str(self.root)
                raise SnapshotError(f"blob {entry.blob[:12]} of {entry.path} is missing from {where}") from exc
            data = fetched[entry.blob]
        if len(data) != entry.size or _sha(data) != entry.blob:
            raise SnapshotError(f"blob {entry.blob[:12]} of {entry.path} is corrupt (size or digest mismatch)")
        return data

    def _fetch(self, blobs: list[str]) -> dict[str, bytes]:
        """Copy these blobs from the database into the local cache; returns those it found (checked)."""
        wanted = sorted(set(blobs))
        if not wanted:
            return {}
        stmt = select(SnapshotBlobRow.blob, SnapshotBlobRow.data).where(col(SnapshotBlobRow.blob).in_(wanted))
        found = run_tx(self.store.engine, lambda s: {b: bytes(d) for b, d in s.exec(stmt)}, write=False)
        for blob, data in found.items():
            if _sha(data) == blob:
                self._write_blob(data)
        return {b: d for b, d in found.items() if _sha(d) == b}

    def read_file(self, snapshot: str, path: str, *, offset: int = 0, limit: int = 1_000_000) -> bytes:
        """Up to `limit` bytes of one file from `offset`."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        return self._blob(self._entry(snapshot, path))[offset:offset + limit]

    def materialize(self, snapshot: str, dest: Path) -> list[str]:
        """Write the snapshot's files under `dest` (absent or empty); returns their paths."""
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise SnapshotPathError(f"{dest} must be an empty directory or not exist")
        entries = self.list_files(snapshot)
        if self.in_database:  # fetch what the local cache lacks in one query
            self._fetch([e.blob for e in entries if not self._blob_path(e.blob).exists()])
        dest.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            target = dest / check_path(entry.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self._blob(entry))
            os.chmod(target, entry.mode)
        return [e.path for e in entries]

    # ---------------------------------------------------------------- diffs
    def diff(
        self, a: str | None, b: str | None, *, context: int = 3, max_lines: int = 400,
        max_bytes: int = 32_000,
    ) -> SnapshotDiff:
        """Unified diff from snapshot `a` to `b` (None: an empty tree), file by file, bounded.

        Files are compared in path order; binary or very large files are summarised in one
        line. Once `max_lines` or `max_bytes` would be exceeded, the remaining hunks are
        replaced by one line naming the files left out, and `truncated` is set.
        """
        old = {e.path: e for e in self.list_files(a)} if a else {}
        new = {e.path: e for e in self.list_files(b)} if b else {}
        changed = sorted(p for p in old.keys() | new.keys() if _key(old.get(p)) != _key(new.get(p)))
        out: list[str] = []
        size, left_out = 0, []
        for path in changed:
            lines = self._file_diff(path, old.get(path), new.get(path), context)
            cost = sum(len(line) for line in lines)
            if left_out or len(out) + len(lines) > max_lines or size + cost > max_bytes:
                left_out.append(path)
                continue
            out.extend(lines)
            size += cost
        if left_out:
            out.append(f"… diff truncated: {len(left_out)} more changed file(s) not shown: {', '.join(left_out[:20])}\n")
        return SnapshotDiff("".join(out), bool(left_out), changed)

    def _file_diff(self, path: str, old: SnapshotEntry | None, new: SnapshotEntry | None, context: int) -> list[str]:
        before = self._blob(old) if old else b""
        after = self._blob(new) if new else b""
        a_text, b_text = _text(before), _text(after)
        if a_text is None or b_text is None or max(len(before), len(after)) > MAX_DIFF_FILE_BYTES:
            kind = "binary" if a_text is None or b_text is None else "large"
            return [f"{kind} file {path} differs ({len(before)} -> {len(after)} bytes)\n"]
        lines = list(difflib.unified_diff(
            a_text.splitlines(keepends=True), b_text.splitlines(keepends=True),
            fromfile=f"a/{path}" if old else "/dev/null", tofile=f"b/{path}" if new else "/dev/null", n=context,
        ))
        if old and new and old.mode != new.mode:
            lines.insert(0, f"mode of {path}: {old.mode:o} -> {new.mode:o}\n")
        return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]


def _key(entry: SnapshotEntry | None) -> tuple[str, int] | None:
    return (entry.blob, entry.mode) if entry else None


def _text(data: bytes) -> str | None:
    """Decode as UTF-8 text, or None for binary content."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
