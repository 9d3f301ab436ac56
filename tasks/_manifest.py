"""The record of a prepared task root: `<root>/prepared.json`, and where task roots live.

The manifest holds the plan's identity, every verified source (size, sha256, MD5, and which
source spec it was fetched for) and every file the build wrote (size, sha256). It is written
atomically after each verified source and again after the build, so an interrupted prepare
never re-hashes what it already verified.

Where a task is prepared (`task_root`): a root pinned in this process (`use_task_root`, e.g.
the root a search recorded), else the root an earlier `prepare --root DIR` remembered in
`<home>/roots.json`, else `<home>/<name>`; `<home>` is what the entry point passed to
`set_tasks_home` (the CLI passes `$AR_TASK_ROOT`), else `~/.cache/autoresearch/tasks`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tasks.exceptions import PrepareError

MANIFEST_NAME = "prepared.json"
ROOTS_NAME = "roots.json"

_home: list[Path | None] = [None]  # what the entry point set; None = the default below
_pinned: dict[str, Path] = {}


def default_tasks_home() -> Path:
    """`~/.cache/autoresearch/tasks`: where tasks are prepared unless told otherwise."""
    return Path.home() / ".cache" / "autoresearch" / "tasks"


def set_tasks_home(path: Path | None) -> None:
    """Set the parent dir of task roots for this process (None: back to the default)."""
    _home[0] = Path(path).resolve() if path else None


def tasks_home() -> Path:
    """The parent dir of task roots in effect."""
    return _home[0] or default_tasks_home()


def use_task_root(name: str, root: Path | None) -> None:
    """Pin task `name` to `root` in this process (a search's recorded root); None unpins."""
    if root is None:
        _pinned.pop(name, None)
    else:
        _pinned[name] = Path(root).resolve()


def _roots_file() -> Path:
    return tasks_home() / ROOTS_NAME


def _remembered() -> dict[str, str]:
    path = _roots_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in dict(data).items()}
    except (ValueError, TypeError) as e:
        raise PrepareError(f"{path} is not a JSON object of task name -> root ({e}); fix or delete it "
                           "(it only remembers roots given with `tasks prepare --root`)") from None


def remember_root(name: str, root: Path) -> None:
    """Remember `root` for task `name` in `<home>/roots.json` (the default root is forgotten)."""
    roots = _remembered()
    root = Path(root).resolve()
    if root == tasks_home() / name:
        roots.pop(name, None)
    else:
        roots[name] = str(root)
    write_json_atomic(_roots_file(), roots)


def task_root(name: str) -> Path:
    """Where task `name` is prepared: pinned, else remembered, else `<home>/<name>`."""
    if name in _pinned:
        return _pinned[name]
    remembered = _remembered().get(name)
    return Path(remembered) if remembered else tasks_home() / name


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` by a rename, so readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class FileEntry:
    """One recorded file: its size and checksums (`spec`: the source spec it was fetched for)."""

    size: int
    sha256: str
    md5: str = ""
    spec: str = ""
    origin: str = ""  # where the expected checksum came from, when not from the plan ("Hub checksum at repo@commit")


@dataclass(frozen=True)
class Manifest:
    """What a task root holds, as `prepared.json` records it.

    `complete` is True once the build ran for plan `plan`; `did` says what the call that
    returned this manifest did (empty: nothing was needed).
    """

    task: str
    root: Path
    plan: str
    complete: bool = False
    sources: dict[str, FileEntry] = field(default_factory=dict)
    built: dict[str, FileEntry] = field(default_factory=dict)
    did: tuple[str, ...] = ()

    @property
    def files(self) -> dict[str, FileEntry]:
        """Every recorded file, sources and built, by path under the root."""
        return {**self.sources, **self.built}

    def total_bytes(self) -> int:
        return sum(e.size for e in self.files.values())

    def save(self) -> None:
        data = {"task": self.task, "plan": self.plan, "complete": self.complete,
                "sources": {k: asdict(v) for k, v in self.sources.items()},
                "built": {k: asdict(v) for k, v in self.built.items()}}
        write_json_atomic(self.root / MANIFEST_NAME, data)

    @classmethod
    def load(cls, task: str, root: Path, plan: str) -> Manifest:
        """The manifest in `root`, or an empty one for `plan` when there is none (or it is unreadable)."""
        path = root / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text())
            sources = {k: FileEntry(**v) for k, v in raw["sources"].items()}
            built = {k: FileEntry(**v) for k, v in raw["built"].items()}
            return cls(task, root, str(raw["plan"]), bool(raw["complete"]), sources, built)
        except (OSError, ValueError, KeyError, TypeError):
            return cls(task, root, plan)  # nothing trusted: every source is checked again

    def with_source(self, dest: str, entry: FileEntry) -> Manifest:
        return replace(self, sources={**self.sources, dest: entry})

    def without(self, dests: set[str]) -> Manifest:
        return replace(self, sources={k: v for k, v in self.sources.items() if k not in dests})


def present(root: Path, rel: str, entry: FileEntry) -> bool:
    """The recorded file is there with its recorded size (the fast check; no hashing)."""
    path = root / rel
    return path.is_file() and path.stat().st_size == entry.size


def built_files(root: Path, skip: set[str]) -> list[str]:
    """Files under `root` the build wrote: not sources (`skip`), not `.part`, not dot-entries at the top."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (rel.split("/", 1)[0].startswith(".") or rel == MANIFEST_NAME or rel in skip
                or rel.endswith(".part") or path.is_symlink() or not path.is_file()):
            continue
        found.append(rel)
    return found


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds (or would hold) `path`."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def human(n: int | float) -> str:
    """Bytes in decimal units: '25.9 GB'."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
