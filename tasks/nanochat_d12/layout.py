"""nanochat-d12's build: verified sources in, recipe/, public/, hidden/ and the tokenizer out.

`build_with(root, spec)` is the `Plan.build` of the task (see `tasks._prepare`): every source
is already verified under `<root>/sources/`. It writes, into a temp dir beside them and then
by renames:

    recipe/                                 the pinned nanochat tree, patched (`patch`); its
                                            digest is checked against `patch.PATCHED_DIGEST`
    public/base_data_climbmix/              the training shards 00000..N-1 (hard links)
    public/holdout/holdout.parquet          shard N (hard link), never trained on: what the
                                            recipe's own "Validation bpb" lines read in training
    public/tokenizer/                       tokenizer.pkl and token_bytes.pt
    public/hf/hub/                          the FA3 kernel for this machine's torch, when
                                            staged (`fa3`); public/fa3.json says which
    hidden/val/shard_06542.parquet          the validation shard, fixed by name (hard link)
    hidden/eval_bundle/                     the CORE bundle, unzipped (core.yaml,
                                            eval_meta_data.csv, eval_data/)
    hidden/row_group_tokens.json            tokens (BOS + document) of every row group of
                                            every training shard: how the scorer counts
                                            what the loader read
    hidden/token_bytes.npy                  UTF-8 bytes of every token (0 for specials)
    hidden/meta.json                        counts, checksums, the FA3 status

The tokenizer is trained once, by the patched tree's own `scripts/tok_train.py` on the
training shards, into `<root>/tokenizer/` with a `SHA256SUMS` file; a later build reuses it
while its checksums hold, so every search on this machine trains with the same tokenizer.
A trial (which sees public/ only, as /data) never reads a validation token or the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks._common import sha256_file
from tasks.exceptions import DataIntegrityError
from tasks.nanochat_d12 import fa3, patch, upstream

SOURCES = "sources"
VERSION = "layout1"  # bump when the build's output changes
BUILT = ("recipe", "public", "hidden")
TOKENIZER_FILES = ("tokenizer.pkl", "token_bytes.pt")
HOLDOUT_NAME = "holdout.parquet"  # the trial's NANOCHAT_VAL_FILE is /data/holdout/holdout.parquet


@dataclass(frozen=True)
class DataSpec:
    """How many ClimbMix shards the build expects, and the tokenizer it trains."""

    train_shards: int = 48  # d12 at ratio 12 reads about 2.1B tokens (~40 shards); a margin on top
    vocab: int = 32768
    tokenizer_chars: int = 2_000_000_000  # upstream's default
    stage_fa3: bool = True

    @property
    def holdout(self) -> int:
        return self.train_shards


FULL = DataSpec()


def source_dests(spec: DataSpec = FULL) -> dict[str, str]:
    """Source dest (under the task root) -> its name upstream (a tree path, a shard, the bundle)."""
    out = {f"{SOURCES}/nanochat/{path}": path for path in upstream.TREE_SHA256}
    for i in [*range(spec.train_shards + 1), upstream.VAL_SHARD]:
        out[f"{SOURCES}/climbmix/{upstream.shard_name(i)}"] = upstream.shard_name(i)
    out[f"{SOURCES}/eval_bundle.zip"] = "eval_bundle.zip"
    return out


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


# ---------------------------------------------------------------- recipe


def _recipe(root: Path, out: Path) -> None:
    tree = root / SOURCES / "nanochat"
    files = {path: (tree / path).read_bytes() for path in upstream.TREE_SHA256}
    bad = [p for p, data in files.items() if hashlib.sha256(data).hexdigest() != upstream.TREE_SHA256[p]]
    if bad:
        raise DataIntegrityError(f"{len(bad)} file(s) of the nanochat tree are not the pinned bytes, e.g. {bad[0]}: "
                                 "run `autoresearch tasks prepare nanochat-d12 --verify`")
    patched = patch.patched_tree(files)
    if patch.tree_digest(patched) != patch.PATCHED_DIGEST:
        raise DataIntegrityError("the patched recipe's digest is not the one tasks/nanochat_d12/patch.py pins")
    for path, data in patched.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)


# ---------------------------------------------------------------- tokenizer


def _sums_ok(folder: Path) -> bool:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return False
    want = dict(line.split("  ", 1)[::-1] for line in sums.read_text().splitlines() if line.strip())
    return set(want) == set(TOKENIZER_FILES) and all(
        (folder / name).is_file() and sha256_file(folder / name) == digest for name, digest in want.items())


def train_tokenizer(root: Path, recipe: Path, train_dir: Path, spec: DataSpec) -> Path:
    """`<root>/tokenizer/`, trained by the recipe's tok_train.py once; reused while SHA256SUMS holds."""
    final = root / "tokenizer"
    if _sums_ok(final):
        return final
    with tempfile.TemporaryDirectory(prefix=".tok.", dir=root) as tmp:
        data = Path(tmp) / "data"
        (data / "base_data_climbmix").mkdir(parents=True)
        for shard in sorted(train_dir.glob("*.parquet")):
            _link(shard, data / "base_data_climbmix" / shard.name)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "AR_DATA": str(data),
               "NANOCHAT_BASE_DIR": str(Path(tmp) / "base"), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-m", "scripts.tok_train", f"--max-chars={spec.tokenizer_chars}",
                               f"--vocab-size={spec.vocab}"], cwd=recipe, env=env, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise DataIntegrityError(f"training the tokenizer failed (rc {proc.returncode}): {proc.stderr[-800:]}")
        staged = Path(tmp) / "new"
        staged.mkdir()
        for name in TOKENIZER_FILES:
            shutil.copyfile(Path(tmp) / "base" / "tokenizer" / name, staged / name)
        (staged / "SHA256SUMS").write_text("".join(f"{sha256_file(staged / n)}  {n}\n" for n in TOKENIZER_FILES))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staged, final)
    return final


def _encoding(tokenizer: Path):
    with open(tokenizer / "tokenizer.pkl", "rb") as f:  # our own build's output, checked by SHA256SUMS
        return pickle.load(f)


def token_bytes(enc) -> np.ndarray:
    """UTF-8 bytes each token stands for; 0 for special tokens (they are not text)."""
    special = {enc.encode_single_token(s) for s in enc.special_tokens_set}
    return np.array([0 if i in special else len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)],
                    dtype=np.int32)


def row_group_tokens(enc, shard: Path) -> list[int]:
    """Tokens per row group of `shard` as the loader reads them: BOS plus each document's tokens."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard)
    counts = []
    for i in range(pf.num_row_groups):
        docs = pf.read_row_group(i, columns=["text"]).column("text").to_pylist()
        counts.append(sum(len(ids) + 1 for ids in enc.encode_ordinary_batch(docs, num_threads=os.cpu_count() or 1)))
    return counts


# ---------------------------------------------------------------- public and hidden


def _public(root: Path, out: Path, spec: DataSpec, tokenizer: Path) -> dict:
    shards = root / SOURCES / "climbmix"
    for i in range(spec.train_shards):
        _link(shards / upstream.shard_name(i), out / "base_data_climbmix" / upstream.shard_name(i))
    _link(shards / upstream.shard_name(spec.holdout), out / "holdout" / HOLDOUT_NAME)
    for name in TOKENIZER_FILES:
        _link(tokenizer / name, out / "tokenizer" / name)
    status = fa3.stage(out / "hf" / "hub") if spec.stage_fa3 else {"staged": False, "why": "not asked for"}
    (out / "fa3.json").write_text(json.dumps(status, indent=1, sort_keys=True))
    return status


def _hidden(root: Path, out: Path, spec: DataSpec, tokenizer: Path, public: Path) -> dict:
    val = upstream.shard_name(upstream.VAL_SHARD)
    _link(root / SOURCES / "climbmix" / val, out / "val" / val)
    with zipfile.ZipFile(root / SOURCES / "eval_bundle.zip") as z:
        z.extractall(out / ".unzip")
    bundle = next((p.parent for p in (out / ".unzip").rglob("core.yaml")), None)
    if bundle is None:
        raise DataIntegrityError("eval_bundle.zip holds no core.yaml: it is not the CORE bundle")
    os.replace(bundle, out / "eval_bundle")
    shutil.rmtree(out / ".unzip")
    enc = _encoding(tokenizer)
    np.save(out / "token_bytes.npy", token_bytes(enc))
    counts = {p.name: row_group_tokens(enc, p) for p in sorted((public / "base_data_climbmix").glob("*.parquet"))}
    (out / "row_group_tokens.json").write_text(json.dumps(counts))
    return {"vocab": int(enc.n_vocab), "val_shard": val, "train_shards": spec.train_shards,
            "holdout_shard": upstream.shard_name(spec.holdout),
            "train_tokens": int(sum(sum(c) for c in counts.values())),
            "tokenizer_sha256": {n: sha256_file(tokenizer / n) for n in TOKENIZER_FILES},
            "eval_bundle_sha256": sha256_file(root / SOURCES / "eval_bundle.zip")}


def build_with(root: Path, spec: DataSpec) -> None:
    """Build recipe/, public/ and hidden/ under `root` from `<root>/sources/` (see the module doc)."""
    root = Path(root)
    missing = [dest for dest in source_dests(spec) if not (root / dest).is_file()]
    if missing:
        raise DataIntegrityError(f"{len(missing)} source file(s) are not in {root / SOURCES}, e.g. {missing[0]}: "
                                 "run `autoresearch tasks prepare nanochat-d12` again to fetch them")
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    try:
        _recipe(root, tmp / "recipe")
        train = tmp / "train"
        for i in range(spec.train_shards):
            _link(root / SOURCES / "climbmix" / upstream.shard_name(i), train / upstream.shard_name(i))
        tokenizer = train_tokenizer(root, tmp / "recipe", train, spec)
        status = _public(root, tmp / "public", spec, tokenizer)
        meta = _hidden(root, tmp / "hidden", spec, tokenizer, tmp / "public")
        (tmp / "hidden" / "meta.json").write_text(json.dumps({**meta, "fa3": status}, indent=1, sort_keys=True))
        for name in BUILT:
            _swap(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(new: Path, old: Path) -> None:
    if old.exists():
        trash = Path(tempfile.mkdtemp(prefix=".old.", dir=old.parent))
        os.replace(old, trash / old.name)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(new, old)


def build(root: Path) -> None:
    """The plan's build for the real data (48 training shards, the 32,768-token tokenizer)."""
    build_with(root, FULL)
