"""Shared implementation for tasks whose recipe ships in the task folder.

`RecipeTask` implements the file-backed parts of the `Task` protocol (recipe, roster.yaml,
knowledge/*.md, scorer/, preflight = syntax + an optional size projection); a task subclasses
it and adds `prepare_data`, `hidden_sources` and `finalize`. The helpers below write prepared
data atomically and verify it against a sha256 manifest, so `prepare_data` is idempotent and
repairs a tampered or half-written directory.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tasks.base import (
    DataDirs,
    Limits,
    Measurements,
    Metric,
    PreflightResult,
    Profile,
    Resources,
    Role,
    RunPlan,
    Verdict,
    syntax_errors,
)
from tasks.exceptions import DataIntegrityError

MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class RecipeTask:
    """File-backed half of a task: `folder` holds recipe/, roster.yaml, knowledge/, scorer/."""

    name: str
    description: str
    folder: Path
    editable: tuple[str, ...]
    entrypoint: str
    metric: Metric
    limits: Limits
    run_plan: RunPlan
    resources: Resources
    calibration_seeds: int
    scorer_script: str = "score.py"
    profiles: tuple[Profile, ...] = ()  # proxies for smaller machines (see `tasks.base.Profile`)
    profile: str = ""  # the profile this object was built for ("" = the full task)

    def recipe_dir(self) -> Path:
        """The starting recipe: exactly the editable tree."""
        return self.folder / "recipe"

    def scorer_dir(self) -> Path:
        """Standalone scorer scripts, bound read-only at /scorer."""
        return self.folder / "scorer"

    def scorer_argv(self) -> tuple[str, ...]:
        """`{python} {scorer_dir}/score.py`."""
        return ("{python}", "{scorer_dir}/" + self.scorer_script)

    def roster(self) -> list[Role]:
        """Roles from roster.yaml, in file order."""
        raw = yaml.safe_load((self.folder / "roster.yaml").read_text())
        return [Role(**entry) for entry in raw["roles"]]

    def knowledge(self) -> dict[str, str]:
        """knowledge/*.md by file name, INIT.md first."""
        files = sorted((self.folder / "knowledge").glob("*.md"), key=lambda p: (p.name != "INIT.md", p.name))
        return {p.name: p.read_text() for p in files}

    def preflight(self, tree: Path) -> PreflightResult:
        """Syntax of every editable .py file, then the task's size projection (if any)."""
        errors = syntax_errors(tree, self.editable)
        if errors:
            return PreflightResult(
                ok=False, status="preflight_crash", message="; ".join(errors[:5]),
                checks={"syntax": errors},
            )
        projected = self.project_bytes(tree)
        cap = self.limits.artifact_cap_bytes
        checks = {"syntax": [], "projected_bytes": projected, "cap_bytes": cap}
        if projected is not None and cap is not None and projected > cap:
            msg = f"projected artifact {projected:,} bytes > cap {cap:,} bytes"
            return PreflightResult(ok=False, status="size_blocked", message=msg,
                                   projected_bytes=projected, checks=checks)
        return PreflightResult(ok=True, projected_bytes=projected, checks=checks)

    def project_bytes(self, tree: Path) -> int | None:
        """Projected artifact bytes without running the recipe; None when not applicable."""
        return None

    def prepare_data(self, root: Path) -> DataDirs:  # pragma: no cover - overridden
        raise NotImplementedError

    def hidden_sources(self) -> list[Path]:  # pragma: no cover - overridden
        raise NotImplementedError

    def finalize(self, m: Measurements) -> Verdict:  # pragma: no cover - overridden
        raise NotImplementedError


# ------------------------------------------------------------------ data helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_errors(root: Path, version: str) -> list[str]:
    """Check `root/MANIFEST.json` against the files on disk and the data `version`.

    The manifest holds {"version": ..., "files": {"public/x.npy": sha256, ...}}.
    Returns one line per problem; [] means intact.
    """
    path = root / MANIFEST
    if not path.is_file():
        return [f"{path}: missing"]
    try:
        raw = json.loads(path.read_text())
        recorded: dict[str, str] = dict(raw["files"])
    except (ValueError, KeyError, TypeError) as e:
        return [f"{path}: unreadable ({type(e).__name__})"]
    if raw.get("version") != version:
        return [f"{path}: data version {raw.get('version')!r} != {version!r}"]
    errors = []
    for rel, digest in sorted(recorded.items()):
        f = root / rel
        if not f.is_file():
            errors.append(f"{rel}: missing")
        elif sha256_file(f) != digest:
            errors.append(f"{rel}: sha256 mismatch")
    return errors


def write_data_dirs(root: Path, version: str, build: Callable[[Path], None]) -> DataDirs:
    """Build public/ and hidden/ in a temp dir beside `root`, then swap them in.

    `build(tmp)` writes tmp/public/* and tmp/hidden/*; a manifest of every file is added.
    Skipped when `root` already holds an intact manifest of this `version` (idempotent);
    a missing, stale or tampered file makes it rebuild everything.
    """
    root = Path(root)
    dirs = DataDirs(public=root / "public", hidden=root / "hidden")
    if not manifest_errors(root, version):
        return dirs
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others find it done
        if not manifest_errors(root, version):
            return dirs
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            build(tmp)
            files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest = {"version": version, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            for sub in ("public", "hidden"):
                (tmp / sub).chmod(0o755)
            _swap_in(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dirs


def _swap_in(tmp: Path, root: Path) -> None:
    """Replace root's public/, hidden/ and manifest by tmp's, one rename each."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)  # an absent manifest marks "being rebuilt"
    for sub in ("public", "hidden"):
        old = root / sub
        if old.exists():
            trash = Path(tempfile.mkdtemp(prefix=".old.", dir=root.parent))
            os.replace(old, trash / sub)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp / sub, old)
    os.replace(tmp / MANIFEST, root / MANIFEST)


def verified_bytes(path: Path, sha256: str) -> bytes:
    """Read a shipped file (gunzipped if it ends in .gz) and check the sha256 of its content.

    Raises DataIntegrityError when the content's sha256 differs from the recorded one.
    """
    data = Path(path).read_bytes()
    if Path(path).suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataIntegrityError(f"{path}: not a readable gzip file ({e})") from e
    digest = sha256_bytes(data)
    if digest != sha256:
        raise DataIntegrityError(f"{path}: sha256 {digest[:12]}… != recorded {sha256[:12]}…")
    return data


def existing(paths: Iterable[Path]) -> list[Path]:
    """The paths that exist, resolved and deduplicated, in first-seen order."""
    seen: dict[Path, None] = {}
    for p in paths:
        if p.exists():
            seen.setdefault(p.resolve(), None)
    return list(seen)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for fewer than two values)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
