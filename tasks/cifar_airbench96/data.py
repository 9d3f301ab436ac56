"""Build cifar-airbench96's task root from its two verified sources (`build(root)`).

Reads `<root>/downloads/cifar-10-python.tar.gz` (the CIFAR-10 python tarball) and
`<root>/upstream/airbench96_faster.py`, and writes, through a temp dir and one rename each:

    public/train.pt         {'images': uint8 [N, 32, 32, 3], 'labels': int64 [N], 'classes': [10 names]}
    public/test.pt          the same for the test images, with placeholder labels (all -1)
    hidden/test_labels.txt  the real test labels, one per line, in test.pt order
    recipe/airbench96.py    the patched upstream recipe (see `patch`)

The .pt layout is what upstream's loader reads. The tarball's batches are pickles: they are
read with an unpickler that accepts only plain containers and numpy arrays, so a tampered
tarball cannot run code here even if it got past the checksum.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tasks.cifar_airbench96.patch import UPSTREAM_PATH, patched_recipe
from tasks.exceptions import DataIntegrityError

TARBALL = "downloads/cifar-10-python.tar.gz"
UPSTREAM = f"upstream/{UPSTREAM_PATH}"
ENTRYPOINT = "airbench96.py"
TEST_LABELS = "test_labels.txt"
PLACEHOLDER_LABEL = -1
_MEMBERS = "cifar-10-batches-py/"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_ALLOWED = {  # what numpy arrays in a CIFAR batch pickle are rebuilt from (Python 2 or 3 pickles;
    # Python 3 writes bytes at protocol 2 through _codecs.encode)
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataIntegrityError(f"CIFAR batch pickle refers to {module}.{name}; only numpy arrays "
                                     "are expected (the tarball is not the canonical one)")
        return super().find_class(module, name)


def _unpickle(raw: bytes, name: str) -> dict[str, Any]:
    entry = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    if not isinstance(entry, dict):
        raise DataIntegrityError(f"{_MEMBERS + name}: a {type(entry).__name__}, expected a dict")
    return entry


def _members(path: Path) -> dict[str, dict[str, Any]]:
    """The batches and batches.meta, unpickled, in one pass over the compressed tarball."""
    wanted = {_MEMBERS + n: n for n in (*TRAIN_BATCHES, "test_batch", "batches.meta")}
    found: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = wanted.get(member.name)
            f = tar.extractfile(member) if name and member.isfile() else None
            if name and f is not None:
                found[name] = _unpickle(f.read(), name)
    missing = [m for m, n in wanted.items() if n not in found]
    if missing:
        raise DataIntegrityError(f"{path.name}: no {', '.join(missing)} (not the CIFAR-10 python tarball)")
    return found


def _batch(entry: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 32, 32, 3] in HWC order, labels int64 [n]) of one batch."""
    data, labels = np.asarray(entry.get("data")), np.asarray(entry.get("labels"), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataIntegrityError(f"{name}: data {data.dtype} {data.shape} with {len(labels)} labels; "
                                 "expected uint8 [n, 3072] and n labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataIntegrityError(f"{name}: labels outside 0-9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_tarball(path: Path) -> dict[str, Any]:
    """The CIFAR-10 python tarball as arrays: train/test images and labels, and class names."""
    entries = _members(Path(path))
    train = [_batch(entries[n], n) for n in TRAIN_BATCHES]
    test_x, test_y = _batch(entries["test_batch"], "test_batch")
    names = entries["batches.meta"].get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataIntegrityError("batches.meta: label_names is not a list of 10 class names")
    return {"train_x": np.concatenate([x for x, _ in train]), "train_y": np.concatenate([y for _, y in train]),
            "test_x": test_x, "test_y": test_y, "classes": [str(n) for n in names]}


def write_split(arrays: dict[str, Any], public: Path, hidden: Path) -> None:
    """public/{train,test}.pt in upstream's layout (test labels as placeholders); hidden/ labels."""
    import torch

    public.mkdir(parents=True)
    hidden.mkdir(parents=True)
    classes = arrays["classes"]
    torch.save({"images": torch.from_numpy(arrays["train_x"]), "labels": torch.from_numpy(arrays["train_y"]),
                "classes": classes}, public / "train.pt")
    placeholder = torch.full((len(arrays["test_x"]),), PLACEHOLDER_LABEL, dtype=torch.int64)
    torch.save({"images": torch.from_numpy(arrays["test_x"]), "labels": placeholder, "classes": classes},
               public / "test.pt")
    (hidden / TEST_LABELS).write_text("".join(f"{int(y)}\n" for y in arrays["test_y"]))


def build(root: Path) -> None:
    """Derive public/, hidden/ and recipe/ under the task root from its verified sources."""
    root = Path(root)
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    try:
        write_split(read_tarball(root / TARBALL), tmp / "public", tmp / "hidden")
        (tmp / "recipe").mkdir()
        (tmp / "recipe" / ENTRYPOINT).write_text(patched_recipe((root / UPSTREAM).read_bytes()))
        for sub in ("public", "hidden", "recipe"):
            if (root / sub).exists():
                shutil.rmtree(root / sub)
            os.replace(tmp / sub, root / sub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
