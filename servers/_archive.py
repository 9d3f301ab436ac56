"""Turn what an evaluator client sends (a file map or a base64 archive) into a checked tree.

Every path goes through `check_relpath` (relative, no `..`, no control characters); archive
members must be regular files (no links, devices or fifos); counts and sizes are bounded, and
the limit is stated in the error. Extraction writes each member itself: nothing in the archive
decides where a byte lands.
"""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from servers.exceptions import WorkspaceLimitError, WorkspacePathError
from servers.workspace import check_relpath


@dataclass(frozen=True)
class TreeLimits:
    max_files: int = 500
    max_file_bytes: int = 4_000_000
    max_total_bytes: int = 32_000_000
    max_archive_bytes: int = 3_000_000  # base64 of it must fit a 4 MiB HTTP request


def _write(dest: Path, files: Iterator[tuple[str, bytes]], lim: TreeLimits) -> list[str]:
    written: dict[str, int] = {}
    for raw, data in files:
        rel = check_relpath(raw)
        if rel in written:
            raise WorkspacePathError(f"{rel} appears twice")
        if len(written) >= lim.max_files:
            raise WorkspaceLimitError(f"more than {lim.max_files} files; send a smaller tree")
        if len(data) > lim.max_file_bytes:
            raise WorkspaceLimitError(f"{rel} has {len(data)} bytes; one file may hold at most {lim.max_file_bytes}")
        written[rel] = len(data)
        if sum(written.values()) > lim.max_total_bytes:
            raise WorkspaceLimitError(f"the tree exceeds {lim.max_total_bytes} bytes")
        target = dest / rel
        if target.parent.exists() and not target.parent.is_dir():
            raise WorkspacePathError(f"{rel}: a parent of it is a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if not written:
        raise WorkspacePathError("no files given: send `files` ({path: text}) or `archive_b64`")
    return sorted(written)


def write_files(dest: Path, files: Mapping[str, str], lim: TreeLimits = TreeLimits()) -> list[str]:
    """Write `{relative path: text}` under `dest`."""
    def items() -> Iterator[tuple[str, bytes]]:
        for path, text in files.items():
            try:
                yield path, text.encode("utf-8")
            except UnicodeEncodeError:
                raise WorkspacePathError(f"{path!r}: not valid Unicode text") from None
    return _write(dest, items(), lim)


def write_archive(dest: Path, archive_b64: str, lim: TreeLimits = TreeLimits()) -> list[str]:
    """Unpack a base64 tar(.gz/.bz2/.xz) or zip archive under `dest`."""
    if len(archive_b64) > lim.max_archive_bytes * 4 // 3 + 8:
        raise WorkspaceLimitError(f"the archive exceeds {lim.max_archive_bytes} bytes")
    try:
        blob = base64.b64decode(archive_b64, validate=True)
    except (binascii.Error, ValueError):
        raise WorkspacePathError("archive_b64 is not valid base64") from None
    if zipfile.is_zipfile(io.BytesIO(blob)):
        return _write(dest, _zip_members(blob, lim), lim)
    return _write(dest, _tar_members(blob, lim), lim)


def _zip_members(blob: bytes, lim: TreeLimits) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise WorkspacePathError(f"{info.filename}: only regular files are accepted (no links)")
                if info.file_size > lim.max_file_bytes:
                    raise WorkspaceLimitError(f"{info.filename} unpacks to more than {lim.max_file_bytes} bytes")
                with zf.open(info) as fh:
                    yield info.filename, fh.read(lim.max_file_bytes + 1)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        raise WorkspacePathError(f"the zip archive cannot be read: {exc}") from None


def _tar_members(blob: bytes, lim: TreeLimits) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
            for member in tf:
                if member.isdir():
                    continue
                if not member.isreg():
                    raise WorkspacePathError(f"{member.name}: only regular files are accepted (no links or devices)")
                if member.size > lim.max_file_bytes:
                    raise WorkspaceLimitError(f"{member.name} unpacks to more than {lim.max_file_bytes} bytes")
                fh = tf.extractfile(member)
                yield member.name, fh.read() if fh else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise WorkspacePathError(f"the archive is neither a readable tar nor a zip: {exc}") from None
