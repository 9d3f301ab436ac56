"""Turn what an evaluator client sends (a file map or a base64 archive) into a checked tree.

Every path goes through `check_relpath` (relative, no `..`, no control characters), and no
path may be both a file and a folder (`a` beside `a/b`); archive members must be regular files
or folders (no links, devices or fifos). Counts and sizes are bounded, and the limit is stated
in the error: archive entries are counted folders included, and a tar is read as a stream whose
unpacked bytes are capped, so a small archive that announces gigabytes (a compression bomb, a
huge long-name header) is refused after a bounded read. Extraction writes each member itself:
nothing in the archive decides where a byte lands.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from servers.exceptions import WorkspaceLimitError, WorkspacePathError
from servers.app.workspace import check_relpath

Entry = tuple[str, bytes | None]  # (path, data); None: a folder entry


@dataclass(frozen=True)
class TreeLimits:
    max_files: int = 500
    max_members: int = 1_000  # archive entries, folders included
    max_file_bytes: int = 4_000_000
    max_total_bytes: int = 32_000_000
    max_archive_bytes: int = 3_000_000  # base64 of it must fit a 4 MiB HTTP request

    @property
    def max_unpacked_bytes(self) -> int:
        """What a tar stream may unpack to: the files plus three header blocks per entry."""
        return self.max_total_bytes + 3 * 512 * self.max_members + 10_240


class _Paths:
    """The files and folders of a tree being written: a path is one or the other, once."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, rel: str, folder: bool) -> None:
        parts = rel.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((p for p in parents if p in self.files), None)
        if clash is None and rel in (self.files if folder else self.dirs):
            clash = rel
        if clash is not None:
            raise WorkspacePathError(f"{clash} is both a file and a folder in this tree; rename one of them")
        if not folder and rel in self.files:
            raise WorkspacePathError(f"{rel} appears twice")
        self.dirs.update(parents)
        (self.dirs if folder else self.files).add(rel)


def _write(dest: Path, entries: Iterator[Entry], lim: TreeLimits) -> list[str]:
    paths, sizes, members = _Paths(), 0, 0
    for raw, data in entries:
        members += 1
        if members > lim.max_members:
            raise WorkspaceLimitError(f"the tree has more than {lim.max_members} entries (folders count too)")
        rel = check_relpath(raw)
        paths.add(rel, folder=data is None)
        if data is None:
            continue
        if len(paths.files) > lim.max_files:
            raise WorkspaceLimitError(f"more than {lim.max_files} files; send a smaller tree")
        if len(data) > lim.max_file_bytes:
            raise WorkspaceLimitError(f"{rel} has {len(data)} bytes; one file may hold at most {lim.max_file_bytes}")
        sizes += len(data)
        if sizes > lim.max_total_bytes:
            raise WorkspaceLimitError(f"the tree exceeds {lim.max_total_bytes} bytes")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if not paths.files:
        raise WorkspacePathError("no files given: send `files` ({path: text}) or `archive_b64`")
    return sorted(paths.files)


def write_files(dest: Path, files: Mapping[str, str], lim: TreeLimits = TreeLimits()) -> list[str]:
    """Write `{relative path: text}` under `dest`."""
    def items() -> Iterator[Entry]:
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


def _zip_members(blob: bytes, lim: TreeLimits) -> Iterator[Entry]:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = zf.infolist()
            if len(infos) > lim.max_members:
                raise WorkspaceLimitError(f"the tree has more than {lim.max_members} entries (folders count too)")
            for info in infos:
                if info.is_dir():
                    yield info.filename, None
                    continue
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise WorkspacePathError(f"{info.filename}: only regular files are accepted (no links)")
                if info.file_size > lim.max_file_bytes:
                    raise WorkspaceLimitError(f"{info.filename} unpacks to more than {lim.max_file_bytes} bytes")
                with zf.open(info) as fh:
                    yield info.filename, fh.read(lim.max_file_bytes + 1)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise WorkspacePathError(f"the zip archive cannot be read: {exc}") from None


class _Capped(io.RawIOBase):
    """A read-only stream that refuses to yield more than `cap` bytes of `inner`."""

    def __init__(self, inner: BinaryIO, cap: int) -> None:
        self.inner, self.cap, self.count = inner, cap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), self.cap - self.count + 1))
        self.count += len(data)
        if self.count > self.cap:
            raise WorkspaceLimitError(f"the archive unpacks to more than {self.cap} bytes")
        buffer[: len(data)] = data
        return len(data)


def _unpacked(blob: bytes, cap: int) -> BinaryIO:
    """The tar bytes of `blob` (gzip, bzip2, xz or none), decompressed as they are read."""
    raw: BinaryIO = io.BytesIO(blob)
    if blob.startswith(b"\x1f\x8b"):
        raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif blob.startswith(b"BZh"):
        raw = bz2.BZ2File(raw)  # type: ignore[assignment]
    elif blob.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMAFile(raw)  # type: ignore[assignment]
    return _Capped(raw, cap)  # type: ignore[return-value]


def _tar_members(blob: bytes, lim: TreeLimits) -> Iterator[Entry]:
    try:
        with tarfile.open(fileobj=_unpacked(blob, lim.max_unpacked_bytes), mode="r|") as tf:
            for count, member in enumerate(tf, 1):
                if count > lim.max_members:
                    raise WorkspaceLimitError(f"the tree has more than {lim.max_members} entries (folders count too)")
                if member.isdir():
                    yield member.name, None
                    continue
                if not member.isreg() or member.issparse():
                    raise WorkspacePathError(f"{member.name}: only regular files are accepted (no links or devices)")
                if member.size > lim.max_file_bytes:
                    raise WorkspaceLimitError(f"{member.name} unpacks to more than {lim.max_file_bytes} bytes")
                fh = tf.extractfile(member)
                yield member.name, fh.read() if fh else b""
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        raise WorkspacePathError(f"the archive is neither a readable tar nor a zip: {exc}") from None
