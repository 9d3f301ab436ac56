"""A specialist's private workspace: the editable copy of the recipe, with checked paths.

Plain, synchronous code (no MCP): the submission and snapshot servers wrap it in tools.

Layout under the search's state directory:

    <state>/workspaces/<specialist>/        the files the specialist edits
    <state>/workspaces/<specialist>.json    its origin: the exp id and snapshot it was last
                                            rebased to (outside the tree, so never editable)

Rules every entry point keeps:

- An agent-supplied path is a POSIX path relative to the workspace: no absolute paths, no
  `..`, no backslashes or NUL bytes, no component that is a symlink (so nothing resolves
  outside the tree), nothing the snapshot would skip (`__pycache__/`, `.git/`, `*.pyc`).
- Writes are limited to the task's editable paths and bounded in size (each error states its
  limit); files are replaced atomically. One lock per workspace serialises writes, rebases and
  snapshots, so a snapshot never sees a half-applied edit.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lineage.exceptions import SnapshotError
from lineage.snapshots import SKIP_DIRS, SKIP_SUFFIXES, SnapshotStore
from servers.exceptions import EditError, WorkspaceError, WorkspaceLimitError, WorkspacePathError
from servers.models import (
    EditResult,
    FileInfo,
    FileSlice,
    Origin,
    WorkspaceDiff,
    WorkspaceListing,
    WriteResult,
)
from servers.names import ref


@dataclass(frozen=True)
class WorkspaceLimits:
    """Bounds on what one workspace may hold and what one call may return."""

    max_file_bytes: int = 1_000_000
    max_total_bytes: int = 20_000_000
    max_files: int = 1_000
    max_path_chars: int = 240
    max_read_lines: int = 2_000
    max_read_chars: int = 60_000
    max_diff_chars: int = 60_000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_relpath(path: object, limits: WorkspaceLimits = WorkspaceLimits()) -> str:
    """Normalise an agent-supplied relative path or raise `WorkspacePathError`."""
    if not isinstance(path, str) or not path.strip():
        raise WorkspacePathError("give a file path relative to your workspace, e.g. 'train.py'")
    if len(path) > limits.max_path_chars:
        raise WorkspacePathError(f"the path is longer than the limit of {limits.max_path_chars} characters")
    if "\\" in path or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        raise WorkspacePathError(
            f"{path!r}: control characters and backslashes are not allowed; use '/' between folders"
        )
    if path.startswith(("/", "~")) or (len(path) > 1 and path[1] == ":"):
        raise WorkspacePathError(
            f"{path!r}: absolute paths are not allowed; use a path relative to your workspace, e.g. 'train.py'"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise WorkspacePathError(f"{path!r} names the workspace itself; give a file path such as 'train.py'")
    if ".." in parts:
        raise WorkspacePathError(f"{path!r}: '..' is not allowed; every path stays inside your workspace")
    if any(p in SKIP_DIRS for p in parts) or parts[-1].endswith(SKIP_SUFFIXES):
        raise WorkspacePathError(f"{path!r}: __pycache__, .git and .pyc files are not part of a trial")
    return "/".join(parts)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WorkspaceError("the text is not valid Unicode (lone surrogates); send plain UTF-8 text") from exc


def _text(data: bytes, rel: str) -> str:
    if b"\x00" in data[:8192]:
        raise WorkspacePathError(f"{rel} is a binary file; only text files can be read or edited")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspacePathError(f"{rel} is not UTF-8 text; only text files can be read or edited") from exc


def slice_text(rel: str, data: bytes, offset: int, limit: int, lim: WorkspaceLimits) -> FileSlice:
    """Lines `offset`.. (1-based) of a text file's bytes, bounded by lines and characters."""
    if offset < 1 or not 1 <= limit <= lim.max_read_lines:
        raise WorkspaceLimitError(f"offset starts at 1 and limit is 1..{lim.max_read_lines} lines")
    lines = _text(data, rel).splitlines(keepends=True)
    taken: list[str] = []
    size, i = 0, offset - 1
    while i < len(lines) and len(taken) < limit:
        line = lines[i]
        if size + len(line) > lim.max_read_chars:
            if not taken:  # one very long line: return its start, so a read always advances
                taken.append(line[: lim.max_read_chars] + "\n… line cut at the read limit\n")
                i += 1
            break
        taken.append(line)
        size += len(line)
        i += 1
    return FileSlice(path=rel, first_line=offset, last_line=offset + len(taken) - 1, total_lines=len(lines),
                     content="".join(taken), next_offset=i + 1 if i < len(lines) else None)


class Workspace:
    """One specialist's editable tree plus its origin record."""

    def __init__(
        self, root: Path, editable: tuple[str, ...], snapshots: SnapshotStore,
        limits: WorkspaceLimits = WorkspaceLimits(),
    ) -> None:
        self.root = Path(root)
        self.meta_path = self.root.with_name(self.root.name + ".json")
        self.editable = tuple(e.strip("/") for e in editable)
        self.snapshots = snapshots
        self.limits = limits
        self.lock = threading.RLock()

    # ---------------------------------------------------------------- paths
    def resolve(self, path: object, *, must_exist: bool = True) -> tuple[str, Path]:
        """(normalised relative path, absolute path) for an agent path; refuses escapes."""
        rel = check_relpath(path, self.limits)
        base = self.root.resolve()
        target = base
        parts = rel.split("/")
        for i, part in enumerate(parts):
            target = target / part
            if target.is_symlink():
                raise WorkspacePathError(f"{rel}: symlinks are not followed in a workspace")
            if i < len(parts) - 1 and target.exists() and not target.is_dir():
                raise WorkspacePathError(f"{rel}: {'/'.join(parts[: i + 1])} is a file, not a folder")
        if must_exist and not target.is_file():
            what = "a folder" if target.is_dir() else "not a file of your workspace"
            raise WorkspacePathError(f"{rel} is {what}; call {ref('list_workspace')} to see the files")
        return rel, target

    def is_editable(self, rel: str) -> bool:
        return any(rel == e or rel.startswith(e + "/") for e in self.editable)

    def _writable(self, path: object) -> tuple[str, Path]:
        rel, target = self.resolve(path, must_exist=False)
        if not self.is_editable(rel):
            raise WorkspacePathError(
                f"{rel} is outside the task's editable paths ({', '.join(self.editable)}); edit those files only"
            )
        if target.is_dir():
            raise WorkspacePathError(f"{rel} is a folder; give a file path")
        return rel, target

    # ---------------------------------------------------------------- origin
    def origin(self) -> Origin:
        """The exp id and snapshot the workspace was last rebased to."""
        return Origin.model_validate_json(self.meta_path.read_text())

    def _set_origin(self, origin: Origin) -> None:
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(origin.model_dump_json())
        os.replace(tmp, self.meta_path)

    # ---------------------------------------------------------------- reads
    def _files(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not (here / d).is_symlink())
            for name in sorted(filenames):
                p = here / name
                if not name.endswith(SKIP_SUFFIXES) and p.is_file() and not p.is_symlink():
                    out[p.relative_to(self.root).as_posix()] = p
        return dict(sorted(out.items()))

    def list_files(self) -> list[FileInfo]:
        """Every file with its size, whether it is editable and whether it changed since the rebase."""
        try:
            base = {e.path: e.blob for e in self.snapshots.list_files(self.origin().snapshot)}
        except (OSError, ValueError, SnapshotError):
            base = {}
        out = []
        for rel, p in self._files().items():
            data = p.read_bytes()
            out.append(FileInfo(path=rel, bytes=len(data), editable=self.is_editable(rel),
                                modified=base.get(rel) != _sha(data)))
        return out

    def listing(self) -> WorkspaceListing:
        """The files plus the origin and the size budget."""
        files = self.list_files()
        try:
            parent: int | None = self.origin().parent_exp
        except (OSError, ValueError):
            parent = None
        return WorkspaceListing(parent_exp=parent, total_bytes=sum(f.bytes for f in files),
                                max_total_bytes=self.limits.max_total_bytes, files=files[:500])

    def read(self, path: object, offset: int = 1, limit: int = 400) -> FileSlice:
        """Lines `offset`.. (1-based) of a text file, at most `limit` lines and the char limit."""
        rel, target = self.resolve(path)
        return slice_text(rel, target.read_bytes(), offset, limit, self.limits)

    # ---------------------------------------------------------------- writes
    def _check_sizes(self, rel: str, size: int) -> None:
        lim = self.limits
        if size > lim.max_file_bytes:
            raise WorkspaceLimitError(f"{rel} would be {size} bytes; one file may hold at most {lim.max_file_bytes}")
        files = self._files()
        others = sum(p.stat().st_size for r, p in files.items() if r != rel)
        if others + size > lim.max_total_bytes:
            raise WorkspaceLimitError(
                f"the workspace would hold {others + size} bytes; the limit is {lim.max_total_bytes}"
            )
        if rel not in files and len(files) + 1 > lim.max_files:
            raise WorkspaceLimitError(f"the workspace already holds the limit of {lim.max_files} files")

    def _replace(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write(self, path: object, content: str) -> WriteResult:
        """Create or overwrite one editable text file."""
        with self.lock:
            rel, target = self._writable(path)
            data = _encode(content)
            self._check_sizes(rel, len(data))
            created = not target.exists()
            self._replace(target, data)
            return WriteResult(path=rel, bytes=len(data), created=created)

    def edit(self, path: object, old: str, new: str, replace_all: bool = False) -> EditResult:
        """Replace the exact text `old` by `new` (once, unless `replace_all`)."""
        with self.lock:
            rel, target = self._writable(path)
            if not target.is_file():
                raise WorkspacePathError(f"{rel} does not exist; create it with {ref('write_workspace_file')}")
            before = target.read_bytes()
            text = _text(before, rel)
            first = _check_edit(rel, text, old, new, replace_all)
            count = text.count(old) if replace_all else 1
            # the size follows from the counts: refuse before building a result that may not fit in memory
            self._check_sizes(rel, len(before) + count * (len(_encode(new)) - len(_encode(old))))
            data = _encode(text.replace(old, new, -1 if replace_all else 1))
            self._replace(target, data)
            return EditResult(path=rel, replacements=count, first_line=first, bytes=len(data))

    # ---------------------------------------------------------------- snapshots
    def snapshot(self) -> str:
        """Store the current tree in the snapshot store; returns its digest."""
        with self.lock:
            return self.snapshots.put_tree(self.root)

    def rebase(self, snapshot: str, exp_id: int) -> list[str]:
        """Replace the whole tree by `snapshot` and record `exp_id` as the new parent."""
        with self.lock:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            fresh = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.root.name}-new-"))
            shutil.rmtree(fresh)
            files = self.snapshots.materialize(snapshot, fresh)
            trash = self.root.with_name(f".{self.root.name}-old-{os.getpid()}-{threading.get_ident()}")
            if self.root.exists():
                os.replace(self.root, trash)
            os.replace(fresh, self.root)
            shutil.rmtree(trash, ignore_errors=True)
            self._set_origin(Origin(parent_exp=exp_id, snapshot=snapshot))
            return files

    def diff(self, context: int = 3) -> WorkspaceDiff:
        """Unified diff from the snapshot the workspace was rebased to, bounded in size."""
        origin = self.origin()
        base = {e.path: e for e in self.snapshots.list_files(origin.snapshot)}
        files = self._files()
        out, size, changed, left_out = [], 0, [], []
        for rel in sorted(base.keys() | files.keys()):
            new = files[rel].read_bytes() if rel in files else b""
            if rel in base and base[rel].blob == _sha(new) and rel in files:
                continue
            old = self.snapshots.read_file(origin.snapshot, rel, limit=1 << 31) if rel in base else b""
            changed.append(rel)
            chunk = _file_diff(rel, old, new, rel in base, rel in files, context)
            if left_out or size + len(chunk) > self.limits.max_diff_chars:
                left_out.append(rel)
                continue
            out.append(chunk)
            size += len(chunk)
        if left_out:
            shown = ", ".join(left_out[:20])
            out.append(f"… diff cut at {self.limits.max_diff_chars} characters; not shown: {shown}\n")
        return WorkspaceDiff(parent_exp=origin.parent_exp, files_changed=changed, diff="".join(out),
                             truncated=bool(left_out))


def _check_edit(rel: str, text: str, old: str, new: str, replace_all: bool) -> int:
    """Validate an exact-string edit; returns the 1-based line of the first match."""
    if not old:
        raise EditError(f"old_text is empty; to replace a whole file use {ref('write_workspace_file')}")
    if old == new:
        raise EditError("old_text and new_text are identical; nothing would change")
    count = text.count(old)
    if count == 0:
        hint = ""
        if old.strip() and old.strip() in text:
            hint = " A match exists that differs only in leading/trailing whitespace; copy it exactly."
        raise EditError(
            f"old_text was not found in {rel}. Read the file again ({ref('read_workspace_file')}) and copy the text "
            f"exactly, including indentation and line breaks.{hint}"
        )
    lines, pos = [], text.find(old)
    while pos != -1 and len(lines) < 10:
        lines.append(text.count("\n", 0, pos) + 1)
        pos = text.find(old, pos + 1)
    if count > 1 and not replace_all:
        raise EditError(
            f"old_text occurs {count} times in {rel} (lines {', '.join(map(str, lines))}); include more "
            "surrounding lines to make it unique, or set replace_all=true to change every occurrence"
        )
    return lines[0]


def _file_diff(rel: str, old: bytes, new: bytes, had: bool, has: bool, context: int) -> str:
    try:
        a, b = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary file {rel} differs ({len(old)} -> {len(new)} bytes)\n"
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True),
        fromfile=f"a/{rel}" if had else "/dev/null", tofile=f"b/{rel}" if has else "/dev/null", n=context,
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
