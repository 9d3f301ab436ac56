"""What a trial sandbox must mask so that hidden data is unreachable by every route.

The task names the host paths that hold its hidden data besides `hidden/` (package data,
caches) in `hidden_sources()`. On top of that, the evaluator masks the project's own
packages when they are installed inside the bound interpreter tree (a non-editable install
would expose scorers and task package data), and it looks for byte-identical copies of every
hidden file under the bound trees (venv, interpreter prefix, extra binds, public data), so
a forgotten copy is masked too.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from evaluator_service._files import walk_stats

MIN_BYTES = 256  # smaller files collide by accident (empty __init__.py, licences)
PROJECT_PACKAGES = ("tasks", "evaluator_service", "lineage", "servers", "client", "prompts")


def _walk(root: Path) -> Iterable[tuple[str, int]]:
    for path, st in walk_stats(root):
        if stat.S_ISREG(st.st_mode) and st.st_size >= MIN_BYTES:
            yield path, st.st_size


@functools.lru_cache(maxsize=8)
def _size_index(roots: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """size -> paths of the (large, static) interpreter trees; built once per process."""
    index: dict[int, list[str]] = defaultdict(list)
    for root in roots:
        for path, size in _walk(Path(root)):
            index[size].append(path)
    return {k: tuple(v) for k, v in index.items()}


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def hidden_copies(hidden: Path, static_roots: Sequence[Path], live_roots: Sequence[Path] = ()) -> list[Path]:
    """Files under the roots that are byte-identical to a file under `hidden`."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for path, size in _walk(hidden):
        wanted[size].add(_digest(path))
    if not wanted:
        return []
    index = dict(_size_index(tuple(sorted(str(r) for r in static_roots))))
    for root in live_roots:
        for path, size in _walk(root):
            index[size] = (*index.get(size, ()), path)
    found = []
    for size, digests in wanted.items():
        for path in index.get(size, ()):
            try:
                if _digest(path) in digests:
                    found.append(Path(path))
            except OSError:
                continue
    return found


def project_package_dirs() -> list[Path]:
    """Where this project's packages are importable from (masked when inside a bound tree)."""
    out = []
    for name in PROJECT_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for loc in (spec.submodule_search_locations or []) if spec else []:
            out.append(Path(loc))
    return out
