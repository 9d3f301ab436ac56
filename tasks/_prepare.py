"""Preparing a task on the user's machine: fetch pinned sources, verify them, build, record.

A task whose recipe or data is not shipped has `preparation() -> Plan`. `prepare(name, plan)`
fills its task root (`task_root(name)`, see `tasks._manifest`):

    <root>/<source.dest>             each source, verified by sha256 (or size + MD5)
    <root>/<source.dest>.part        an HTTP download in progress (the next prepare resumes it)
    <root>/.hf/                      huggingface_hub's resumable staging for Hub sources
    <root>/public/ hidden/ recipe/   what `plan.build(root)` derives from the sources
    <root>/prepared.json             the manifest: the plan's identity, every file, size, sha256

Free disk is checked before anything is fetched. A second prepare only stats the recorded
files (`verify=True` re-hashes them). A wrong checksum deletes only that download's bytes.
A failed build keeps the verified sources, and the next prepare retries the build.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

from tasks._hub import git_blob_sha1, hub_pinned
from tasks._download import NO_PROGRESS, Progress, fetch_hf, fetch_http, file_digests
from tasks._manifest import (
    FileEntry, Manifest, built_files, default_tasks_home, free_bytes, human, present, remember_root,
    set_tasks_home, task_root, tasks_home, use_task_root,
)
from tasks.base import DataDirs
from tasks.exceptions import BuildError, ChecksumError, DiskSpaceError, NotPreparedError, PrepareError

__all__ = [
    "Manifest", "Plan", "PrepareStatus", "Progress", "Source", "default_tasks_home", "prepare",
    "prepared_dirs", "remember_root", "require_prepared", "set_tasks_home", "status", "task_root", "tasks_home",
    "use_task_root",
]

_RESERVED = {"public", "hidden", "recipe", "prepared.json"}
BUILD_LOG = ".build-error.log"
LOCK = ".prepare.lock"  # also marks a directory as a task root


@dataclass(frozen=True)
class Source:
    """One file to fetch into the task root and verify."""

    dest: str                      # path under the task root, e.g. "upstream/airbench96_faster.py"
    url: str = ""                  # a plain HTTP(S) download, or
    hf_repo: str = ""              # a Hugging Face Hub file: repo id,
    hf_file: str = ""              #   its path in the repo,
    hf_repo_type: str = "dataset"  #   the repo type,
    hf_revision: str = "main"      #   and the revision (pin a commit where one is known)
    sha256: str = ""               # checksum (preferred); or, where upstream publishes only these:
    size: int | None = None        #   the size in bytes
    md5: str = ""                  #   and the MD5; or, for a Hub file with none recorded here:
    hub_checksum: bool = False     #   the checksum the Hub publishes for it at the revision, which
                                   #   is resolved to a commit on the first prepare (see `_hub`); or,
    first_use: bool = False        #   for a plain download whose host publishes none, the sha256 of
                                   #   the first download, recorded then and checked from then on

    def __post_init__(self) -> None:
        path = PurePosixPath(self.dest)
        if not self.dest or path.is_absolute() or ".." in path.parts or path.parts[0].startswith("."):
            raise ValueError(f"Source dest {self.dest!r}: give a relative path under the task root "
                             "(no '..', not starting with '.')")
        if path.parts[0] in _RESERVED or self.dest.endswith(".part"):
            raise ValueError(f"Source dest {self.dest!r}: public/, hidden/, recipe/ and prepared.json "
                             "belong to the build and the manifest; fetch into another folder")
        if bool(self.url) == bool(self.hf_repo and self.hf_file):
            raise ValueError(f"Source {self.dest!r}: give either url, or hf_repo and hf_file")
        if (not self.sha256 and not (self.size is not None and self.md5) and not (self.hf_repo and self.hub_checksum)
                and not (self.url and self.first_use)):
            raise ValueError(f"Source {self.dest!r}: give sha256, or size and md5 (or, for a Hub file, "
                             "hub_checksum=True to verify it against the checksum the Hub publishes; for a plain "
                             "download whose host publishes none, first_use=True)")

    @property
    def where(self) -> str:
        """Where it comes from, for messages."""
        return self.url or f"{self.hf_repo}/{self.hf_file}@{self.hf_revision} (Hugging Face {self.hf_repo_type})"

    def spec_id(self) -> str:
        """A digest of every field: a recorded file counts only for the source it was fetched for."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """How to prepare one task: what to fetch, and what to build from it."""

    sources: tuple[Source, ...]
    build: Callable[[Path], None]  # called with the task root once every source is verified:
                                   # unpack, patch, derive <root>/public and <root>/hidden,
                                   # write <root>/recipe/; idempotent, atomic (temp dir + rename)
    download_bytes: int            # what the sources take on disk
    built_bytes: int               # what `build` adds
    notes: str = ""                # licences and caveats `tasks show` prints
    version: str = ""              # bump when `build`'s output changes: a prepared root rebuilds

    def __post_init__(self) -> None:
        dests = [s.dest for s in self.sources]
        if len(set(dests)) != len(dests):
            raise ValueError(f"Plan: two sources share a dest: {sorted(d for d in dests if dests.count(d) > 1)}")

    def identity(self) -> str:
        """A digest of the sources, the build function's name and `version`."""
        build = f"{getattr(self.build, '__module__', '')}.{getattr(self.build, '__qualname__', repr(self.build))}"
        raw = json.dumps({"sources": [asdict(s) for s in self.sources], "build": build,
                          "version": self.version}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PrepareStatus:
    """Whether a task is prepared in `root`, and if not what is missing and what it takes."""

    name: str
    root: Path
    prepared: bool
    missing: tuple[str, ...]  # source dests still to fetch, and "build" when the build is due
    command: str              # the exact command that prepares it
    needed_bytes: int         # free disk still needed
    free_bytes: int           # free disk where it would go
    notes: str = ""

    def summary(self) -> str:
        if self.prepared:
            return f"{self.name} is prepared in {self.root}"
        return (f"{self.name} is not prepared in {self.root}; prepare it with `{self.command}` "
                f"(needs {human(self.needed_bytes)} of free disk there; {human(self.free_bytes)} free now)")


# ---------------------------------------------------------------- status


def _resolve(name: str, root: Path | None) -> Path:
    return Path(root).resolve() if root is not None else task_root(name)


def _command(name: str, root: Path) -> str:
    base = f"autoresearch tasks prepare {name}"
    return base if root == default_tasks_home() / name else f"{base} --root {shlex.quote(str(root))}"


def _fetched(src: Source, manifest: Manifest) -> bool:
    entry = manifest.sources.get(src.dest)
    return entry is not None and entry.spec == src.spec_id() and present(manifest.root, src.dest, entry)


def _built(plan: Plan, manifest: Manifest) -> bool:
    return (manifest.complete and manifest.plan == plan.identity()
            and all(present(manifest.root, rel, e) for rel, e in manifest.built.items()))


def _part_bytes(root: Path, src: Source) -> int:
    part = root / f"{src.dest}.part"
    return part.stat().st_size if part.is_file() else 0


def _to_download(plan: Plan, manifest: Manifest, todo: list[Source]) -> int:
    """Bytes of the sources still to fetch (exact where all have sizes, else from the plan's total)."""
    have = sum(manifest.sources[s.dest].size for s in plan.sources if s not in todo)
    sized = [s.size for s in todo if s.size is not None]
    return sum(sized) if len(sized) == len(todo) else max(plan.download_bytes - have, sum(sized))


def _needed(plan: Plan, manifest: Manifest, todo: list[Source], build_due: bool) -> int:
    """Disk still needed: the downloads left (less what `.part` files hold) and the build."""
    left = _to_download(plan, manifest, todo) - sum(_part_bytes(manifest.root, s) for s in todo)
    return max(left, 0) + (plan.built_bytes if build_due else 0)


def status(name: str, plan: Plan, root: Path | None = None) -> PrepareStatus:
    """Whether `name` is prepared in `root` (default `task_root(name)`), by size only (fast)."""
    root = _resolve(name, root)
    manifest = Manifest.load(name, root, plan.identity())
    todo = [s for s in plan.sources if not _fetched(s, manifest)]
    build_due = bool(todo) or not _built(plan, manifest)
    missing = tuple(s.dest for s in todo) + (("build",) if build_due else ())
    return PrepareStatus(name=name, root=root, prepared=not missing, missing=missing,
                         command=_command(name, root), needed_bytes=_needed(plan, manifest, todo, build_due),
                         free_bytes=free_bytes(root), notes=plan.notes)


def require_prepared(name: str, plan: Plan, root: Path | None = None) -> Path:
    """The task root, prepared.

    Raises:
        NotPreparedError: it is not (the message gives the exact command and the disk needed).
    """
    st = status(name, plan, root)
    if not st.prepared:
        missing = ", ".join(st.missing[:4]) + (f" and {len(st.missing) - 4} more" if len(st.missing) > 4 else "")
        raise NotPreparedError(f"{st.summary()}. Missing: {missing}.")
    return st.root


def prepared_dirs(name: str, plan: Plan, root: Path | None = None) -> DataDirs:
    """`<root>/public` and `<root>/hidden` of the prepared task (what `prepare_data` returns).

    Raises:
        NotPreparedError: as `require_prepared`.
    """
    prepared = require_prepared(name, plan, root)
    return DataDirs(public=prepared / "public", hidden=prepared / "hidden")


# ---------------------------------------------------------------- prepare


def prepare(name: str, plan: Plan, root: Path | None = None, *, progress: Progress | None = None,
            verify: bool = False, hf_endpoint: str | None = None, retries: int = 3) -> Manifest:
    """Fetch, verify and build task `name` in `root` (default `task_root(name)`); idempotent.

    Args:
        verify: re-hash every recorded file (a bad source is fetched again, a bad built file
            makes the build run again); without it a prepared root is checked by size only.
        hf_endpoint: the Hugging Face endpoint (None: huggingface_hub's default, HF_ENDPOINT).
        retries: how often a dropped HTTP connection is resumed before giving up.

    Returns:
        The manifest; its `did` says what this call did (empty when nothing was needed).

    Raises:
        DiskSpaceError: too little free disk (checked before any download).
        DownloadError: a source could not be fetched (its partial bytes stay for a resume).
        ChecksumError: a source's bytes are wrong (only that download is deleted).
        BuildError: the build failed (the verified sources stay; the next prepare retries it).
        PrepareError: another prepare of this root is running.
    """
    progress = progress or NO_PROGRESS
    st = status(name, plan, root)
    if st.prepared and not verify:
        progress.message(f"{name} is already prepared in {st.root}; nothing to do")
        return Manifest.load(name, st.root, plan.identity())
    if st.needed_bytes > st.free_bytes:
        raise DiskSpaceError(
            f"preparing {name} needs {human(st.needed_bytes)} of free disk in {st.root}, and only "
            f"{human(st.free_bytes)} is free there; nothing was downloaded. Free some space, or prepare it "
            f"on a larger disk: autoresearch tasks prepare {name} --root DIR")
    _claim(name, plan, st.root)
    with _locked(name, st.root):
        return _prepare_locked(name, plan, st.root, progress, verify, hf_endpoint, retries)


def _claim(name: str, plan: Plan, root: Path) -> None:
    """Make `root` a private task root; refuse a directory that is not one and holds other files.

    A root is recognised by its lock file, or by a source (or `.part`) already placed in it.
    """
    ours = [LOCK] + [p for s in plan.sources for p in (s.dest, f"{s.dest}.part")]
    if root.is_dir() and any(root.iterdir()) and not any((root / p).is_file() for p in ours):
        raise PrepareError(f"{root} already holds other files, and a task root is the build's to fill "
                           f"(and is made private): give a new or empty directory, e.g. --root {root / name}")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # raw sources may hold hidden data: sandboxes see only bound public/
    (root / LOCK).touch()


@contextmanager
def _locked(name: str, root: Path) -> Iterator[None]:
    with open(root / LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PrepareError(f"another `prepare` of {name} is running in {root}; wait for it to "
                               "finish, then run the command again") from None
        yield


def _prepare_locked(name: str, plan: Plan, root: Path, progress: Progress, verify: bool,
                    hf_endpoint: str | None, retries: int) -> Manifest:
    manifest = Manifest.load(name, root, plan.identity())
    did: list[str] = []
    if verify:
        manifest, bad = _reverify(plan, manifest, progress)
        did += [f"re-hashed {len(manifest.files)} file(s)"] + [f"bad: {b}" for b in bad]
    todo = [s for s in plan.sources if not _fetched(s, manifest)]
    progress.start(_to_download(plan, manifest, todo), len(todo))
    for src in todo:
        if src.dest in manifest.sources:  # fetched for an older plan: ours to replace
            (root / src.dest).unlink(missing_ok=True)
            manifest = manifest.without({src.dest})
        entry = _fetch(src, root, progress, hf_endpoint, retries)
        manifest = manifest.with_source(src.dest, entry)
        manifest.save()
        did.append(f"fetched {src.dest}")
    if todo or not _built(plan, manifest):
        manifest = _build(name, plan, manifest, progress)
        did.append("built")
    shutil.rmtree(root / ".hf", ignore_errors=True)
    return replace(manifest, did=tuple(did))


def _fetch(src: Source, root: Path, progress: Progress, hf_endpoint: str | None, retries: int) -> FileEntry:
    dest = root / src.dest
    # a Hub file with no checksum here: ask the Hub for it, and pin the download to that commit
    pinned = hub_pinned(src, hf_endpoint) if src.hub_checksum and not src.sha256 else src
    origin = (f"Hub checksum at {src.hf_repo}@{pinned.hf_revision}" if pinned is not src else
              "sha256 recorded at the first download" if src.first_use and not src.sha256 else "")
    if dest.is_file():  # there but unrecorded: a crash before the manifest was saved, or staged by hand
        progress.message(f"checking {src.dest} (already there)")
        return replace(_check(pinned, dest, delete_if_bad=False), spec=src.spec_id(), origin=origin)
    progress.file(src.dest, pinned.size, _part_bytes(root, src))
    if src.url:
        got = root / f"{src.dest}.part"
        fetch_http(src.url, got, progress=progress, retries=retries)
    else:
        got = fetch_hf(src.hf_repo, src.hf_file, repo_type=src.hf_repo_type, revision=pinned.hf_revision,
                       staging=root / ".hf", endpoint=hf_endpoint, progress=progress)
    entry = replace(_check(pinned, got, delete_if_bad=True), spec=src.spec_id(), origin=origin)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(got, dest)
    return entry


def _check(src: Source, path: Path, *, delete_if_bad: bool) -> FileEntry:
    """The file's entry if its bytes are what `src` says; else ChecksumError (deleting them if asked)."""
    size = path.stat().st_size
    sha, md5 = file_digests(path)
    if src.hub_checksum and src.md5.startswith("git-blob:"):  # a small non-LFS Hub file: its git blob id
        blob = git_blob_sha1(path)
        wrong = f"git blob {blob}, expected {src.md5[9:]}" if blob != src.md5[9:] else ""
    elif src.sha256:
        wrong = f"sha256 {sha}, expected {src.sha256}" if sha != src.sha256.lower() else ""
    elif src.first_use and not src.md5:
        wrong = ""  # nothing to check against yet: the manifest records this sha256 for later checks
    else:
        wrong = (f"size {size:,} bytes, expected {src.size:,}" if size != src.size else
                 f"MD5 {md5}, expected {src.md5}" if md5 != src.md5.lower() else "")
    if wrong:
        if delete_if_bad:
            path.unlink()
            fate = "its bytes were deleted and nothing else was touched; run the command again to download it afresh"
        else:
            fate = f"it was already at {path} before this run, so it was left there: delete or replace it"
        raise ChecksumError(f"{src.dest} (from {src.where}): {wrong}; {fate}. If it happens again, "
                            "the upstream file changed or the download is being altered on the way.")
    return FileEntry(size=size, sha256=sha, md5=md5, spec=src.spec_id())


def _reverify(plan: Plan, manifest: Manifest, progress: Progress) -> tuple[Manifest, list[str]]:
    """Re-hash every recorded file; drop (and delete) bad sources, mark a bad build incomplete."""
    progress.start(manifest.total_bytes(), len(manifest.files))
    bad_sources = {rel for rel, e in manifest.sources.items() if not _same(manifest.root / rel, e, progress)}
    bad_built = [rel for rel, e in manifest.built.items() if not _same(manifest.root / rel, e, progress)]
    for rel in bad_sources:
        (manifest.root / rel).unlink(missing_ok=True)  # a verified download that rotted: fetched again
    manifest = manifest.without(bad_sources)
    if bad_built or bad_sources:
        manifest = replace(manifest, complete=False)
    manifest.save()
    return manifest, sorted(bad_sources) + bad_built


def _same(path: Path, entry: FileEntry, progress: Progress) -> bool:
    progress.file(path.name, entry.size)
    return path.is_file() and path.stat().st_size == entry.size and file_digests(path, progress)[0] == entry.sha256


def _build(name: str, plan: Plan, manifest: Manifest, progress: Progress) -> Manifest:
    root = manifest.root
    manifest = replace(manifest, complete=False, built={}, plan=plan.identity())
    manifest.save()  # an interrupted build is redone, never trusted
    progress.message(f"building {name} in {root}")
    try:
        plan.build(root)
    except Exception as e:  # boundary: the task's build code; recorded with its traceback
        (root / BUILD_LOG).write_text(traceback.format_exc())
        raise BuildError(f"building {name} in {root} failed: {type(e).__name__}: {e}. The verified "
                         f"sources are kept; the traceback is in {root / BUILD_LOG}. Run the same "
                         "command again to retry the build.") from e
    (root / BUILD_LOG).unlink(missing_ok=True)
    manifest = replace(manifest, complete=True, built=_record_built(root, plan, manifest))
    manifest.save()
    return manifest


def _record_built(root: Path, plan: Plan, manifest: Manifest) -> dict[str, FileEntry]:
    """Size and sha256 of every built file; a hard link of a source reuses its checksum."""
    by_inode = {(p.stat().st_dev, p.stat().st_ino): e for rel, e in manifest.sources.items()
                if (p := root / rel).is_file()}
    out = {}
    for rel in built_files(root, set(manifest.sources) | {s.dest for s in plan.sources}):
        st = (root / rel).stat()
        known = by_inode.get((st.st_dev, st.st_ino))
        sha = known.sha256 if known else file_digests(root / rel)[0]
        out[rel] = FileEntry(size=st.st_size, sha256=sha)
    return out
