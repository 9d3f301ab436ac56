"""Synthetic CIFAR-10 for cifar-airbench96's tests: the python tarball's real layout, tiny sizes.

`write_tarball` writes `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}` as
pickled dicts (uint8 `data` [n, 3072] in CHW order, `labels` lists, `label_names`), gzipped,
like the canonical file. Images carry a faint class-dependent colour so they are not pure
noise. `prepared_root` stages that tarball and the pinned upstream file in a task root and
runs the real `prepare` on them (no network: staged files are verified where they lie).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tasks._prepare import prepare
from tasks.cifar_airbench96.data import TARBALL, UPSTREAM
from tasks.cifar_airbench96.task import TASK, CifarAirbench96

PINNED = Path(__file__).resolve().parents[3] / "shared" / "upstream" / "cifar10-airbench" / "airbench96_faster.py"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pinned_upstream() -> bytes:
    """The pinned upstream recipe from the shared folder, or skip the test."""
    if not PINNED.is_file():
        pytest.skip(f"the pinned upstream file is not here ({PINNED}); it ships only with the dev checkout")
    return PINNED.read_bytes()


def _images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    noise = rng.integers(0, 200, size=(len(labels), 3, 1024))
    tint = (np.arange(3)[None, :, None] * 20 + labels[:, None, None] * 5)  # class-dependent colour
    return (noise + tint).clip(0, 255).astype(np.uint8).reshape(len(labels), 3072)


def _add(tar: tarfile.TarFile, name: str, obj: object, py2_names: bool) -> None:
    raw = pickle.dumps(obj, protocol=2)
    if py2_names:  # the module path numpy had when the canonical batches were pickled
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def write_tarball(path: Path, per_batch: int = 52, n_test: int = 100, seed: int = 0,
                  extra: dict[str, object] | None = None, skip: tuple[str, ...] = (),
                  py2_names: bool = False) -> list[int]:
    """Write a CIFAR-format tarball (5 train batches of `per_batch`); return the test labels.

    `extra` adds (or replaces) members by name; `skip` leaves members out; `py2_names` writes
    numpy's old module path into the pickles, as the canonical (Python 2) file has it.
    """
    rng = np.random.default_rng(seed)
    members: dict[str, object] = {}
    for i in range(1, 6):
        y = rng.integers(0, 10, per_batch)
        members[f"data_batch_{i}"] = {"batch_label": f"training batch {i} of 5", "labels": y.tolist(),
                                      "data": _images(rng, y), "filenames": [f"{i}_{j}.png" for j in range(per_batch)]}
    test_y = rng.integers(0, 10, n_test)
    members["test_batch"] = {"batch_label": "testing batch 1 of 1", "labels": test_y.tolist(),
                             "data": _images(rng, test_y), "filenames": [f"t{j}.png" for j in range(n_test)]}
    members["batches.meta"] = {"label_names": CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            if name not in skip:
                _add(tar, name, obj, py2_names)
    return test_y.tolist()


def fixture_task(root: Path, tarball: bytes) -> CifarAirbench96:
    """The real task, prepared in `root`, whose tarball source is the synthetic one."""
    sources = tuple(
        dataclasses.replace(s, size=len(tarball), md5=hashlib.md5(tarball).hexdigest()) if s.dest == TARBALL else s
        for s in TASK.sources)
    return dataclasses.replace(TASK, root=root, sources=sources)


def prepared_root(root: Path, upstream: bytes | None = None, **tarball_args: object) -> tuple[CifarAirbench96, list[int]]:
    """Stage a synthetic tarball and the upstream file (default: the pinned copy) in `root`, then
    really prepare it; returns the task prepared there and the hidden test labels."""
    (root / TARBALL).parent.mkdir(parents=True)
    labels = write_tarball(root / TARBALL, **tarball_args)  # type: ignore[arg-type]
    (root / UPSTREAM).parent.mkdir(parents=True)
    (root / UPSTREAM).write_bytes(pinned_upstream() if upstream is None else upstream)
    task = fixture_task(root, (root / TARBALL).read_bytes())
    prepare(task.name, task.preparation(), root)
    return task, labels

