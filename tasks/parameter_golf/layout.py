"""parameter-golf's build: verified sources in, recipe/, public/ and hidden/ out.

`build(root)` is the `Plan.build` of the task (see `tasks._prepare`): every source is already
verified under `<root>/sources/`. It writes, into a temp dir beside them and then by renames:

    recipe/train_gpt.py                        the record unpacked (sha256 checked) and patched
    public/datasets/fineweb10B_sp8192/         the 128 train shards (hard links), the last one
        fineweb_train_000000..000127.bin         shortened by the holdout
    public/holdout/fineweb_holdout_000000.bin  the last HOLDOUT_TOKENS tokens of the last train
                                               shard: what the recipe evaluates on while training
    public/tokenizers/fineweb_8192_bpe.model   the tokenizer (the recipe builds its own tables)
    public/shim/flash_attn_interface.py        the cpu-smoke profile's stand-in for FA3
    hidden/val/fineweb_val_000000.bin          the validation shard (hard link): only the scorer
    hidden/byte_tables.npz                     bytes per token, computed here from the tokenizer
    hidden/meta.json                           counts, the tokens/bytes ratio, the tokenizer's sha256

So a train phase (which sees public/ only, as /data) never reads a validation token. With
the real data, the build checks its byte tables against the record: val_bpb/val_loss on
the validation set must come out as 0.3871312.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks._common import sha256_file
from tasks.exceptions import DataIntegrityError
from tasks.parameter_golf import patch, upstream

FOLDER = Path(__file__).resolve().parent
SOURCES = "sources"
HOLDOUT_TOKENS = 1 << 22  # 4.2M tokens, about 10% of the validation set's size
VERSION = "layout1"  # bump when the build's output changes
BUILT = ("recipe", "public", "hidden")


@dataclass(frozen=True)
class DataSpec:
    """How many shards of which vocabulary the build expects, and the holdout's size."""

    vocab: int = upstream.VOCAB
    train_shards: int = upstream.TRAIN_SHARDS
    val_shards: int = upstream.VAL_SHARDS
    holdout_tokens: int = HOLDOUT_TOKENS

    @property
    def dataset(self) -> str:
        return f"fineweb10B_sp{self.vocab}"

    @property
    def tokenizer(self) -> str:
        return f"fineweb_{self.vocab}_bpe.model"


FULL = DataSpec()
UPSTREAM_FILES = ("train_gpt.py", "LICENSE", "THIRD_PARTY_NOTICES.md")


def source_dests(spec: DataSpec = FULL) -> dict[str, str]:
    """Source dest (under the task root) -> file name upstream, for every data file."""
    out = {f"{SOURCES}/upstream/{name}": name for name in UPSTREAM_FILES}
    for split, n in (("train", spec.train_shards), ("val", spec.val_shards)):
        for i in range(n):
            name = upstream.shard_name(split, i)
            out[f"{SOURCES}/{spec.dataset}/{name}"] = name
    out[f"{SOURCES}/tokenizers/{spec.tokenizer}"] = spec.tokenizer
    return out


# ---------------------------------------------------------------- shards


def shard_tokens(path: Path) -> np.ndarray:
    """The uint16 tokens of a 20240520 shard, memory-mapped, after checking header and size."""
    header = np.fromfile(path, dtype="<i4", count=upstream.HEADER_INTS)
    if header.size != upstream.HEADER_INTS or header[0] != upstream.SHARD_MAGIC or header[1] != upstream.SHARD_VERSION:
        raise DataIntegrityError(f"{path}: not a {upstream.SHARD_MAGIC} shard (bad header)")
    n = int(header[2])
    if path.stat().st_size != upstream.HEADER_INTS * 4 + 2 * n:
        raise DataIntegrityError(f"{path}: {path.stat().st_size} bytes, the header says {n} tokens")
    return np.memmap(path, dtype="<u2", mode="r", offset=upstream.HEADER_INTS * 4, shape=(n,))


def write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(upstream.HEADER_INTS, dtype="<i4")
    header[:3] = (upstream.SHARD_MAGIC, upstream.SHARD_VERSION, len(tokens))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2").tobytes())


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


# ---------------------------------------------------------------- byte tables


def byte_tables(model_path: Path) -> dict[str, np.ndarray]:
    """Bytes each token adds to the text, from the SentencePiece model (our own derivation).

    Control, unknown and unused pieces are boundaries worth 0 bytes; byte-fallback pieces are
    1 byte; any other piece is its UTF-8 length without a leading "▁", which is a space the
    scorer counts only when the previous token is not a boundary.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    n = int(sp.vocab_size())
    if sp.piece_to_id("\u2581") == sp.unk_id():
        raise DataIntegrityError(f"{model_path}: the tokenizer has no standalone '\u2581' piece")
    base, space, boundary = np.zeros(n, np.int16), np.zeros(n, bool), np.ones(n, bool)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            base[i] = 1
            continue
        if piece.startswith("\u2581"):
            space[i], piece = True, piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return {"base_bytes": base, "leading_space": space, "boundary": boundary}


def scored_counts(tokens: np.ndarray, tables: dict[str, np.ndarray], seq_len: int = 2048) -> tuple[int, int]:
    """(targets, bytes) of a validation set trimmed to whole windows of `seq_len`, as upstream scores it."""
    total = (len(tokens) - 1) // seq_len * seq_len
    prev, tgt = np.asarray(tokens[:total], np.int64), np.asarray(tokens[1:total + 1], np.int64)
    nbytes = tables["base_bytes"][tgt].astype(np.int64) + (tables["leading_space"][tgt] & ~tables["boundary"][prev])
    return total, int(nbytes.sum())


# ---------------------------------------------------------------- the build


def _recipe(src: Path, out: Path) -> None:
    source = upstream.unpack((src / "train_gpt.py").read_bytes()).decode("utf-8")
    notices = (src / "LICENSE").read_text() + "\n" + (src / "THIRD_PARTY_NOTICES.md").read_text()
    out.mkdir(parents=True)
    (out / "train_gpt.py").write_text(patch.patched_recipe(source, notices))


def _public(root: Path, out: Path, spec: DataSpec) -> int:
    shards = root / SOURCES / spec.dataset
    dataset = out / "datasets" / spec.dataset
    for i in range(spec.train_shards - 1):
        _link(shards / upstream.shard_name("train", i), dataset / upstream.shard_name("train", i))
    last = shard_tokens(shards / upstream.shard_name("train", spec.train_shards - 1))
    if len(last) < 4 * spec.holdout_tokens:
        raise DataIntegrityError(f"the last train shard holds {len(last)} tokens, too few for a holdout of "
                                 f"{spec.holdout_tokens}")
    cut = len(last) - spec.holdout_tokens
    write_shard(dataset / upstream.shard_name("train", spec.train_shards - 1), last[:cut])
    write_shard(out / "holdout" / "fineweb_holdout_000000.bin", last[cut:])
    _link(root / SOURCES / "tokenizers" / spec.tokenizer, out / "tokenizers" / spec.tokenizer)
    (out / "shim").mkdir()
    shutil.copyfile(FOLDER / "shim" / "flash_attn_interface.py", out / "shim" / "flash_attn_interface.py")
    return spec.holdout_tokens


def _hidden(root: Path, out: Path, spec: DataSpec) -> dict:
    tables = byte_tables(root / SOURCES / "tokenizers" / spec.tokenizer)
    tokens = []
    for i in range(spec.val_shards):
        name = upstream.shard_name("val", i)
        tokens.append(np.asarray(shard_tokens(root / SOURCES / spec.dataset / name)))
        _link(root / SOURCES / spec.dataset / name, out / "val" / name)
    val = np.concatenate(tokens)
    np.savez(out / "byte_tables.npz", **tables)
    targets, nbytes = scored_counts(val, tables)
    ratio = targets / (nbytes * math.log(2.0))
    if spec == FULL and targets == upstream.VAL_TOKENS_SCORED and abs(ratio - upstream.BPB_PER_LOSS) > 1e-6:
        raise DataIntegrityError(f"byte tables give val_bpb/val_loss = {ratio:.7f} on the validation set, the "
                                 f"record's logs {upstream.BPB_PER_LOSS}: the tokenizer or the shard is not the record's")
    meta = {"vocab": len(tables["base_bytes"]), "val_tokens": int(len(val)), "scored_targets_2048": targets,
            "scored_bytes_2048": nbytes, "bpb_per_loss_2048": ratio,
            "tokenizer_sha256": sha256_file(root / SOURCES / "tokenizers" / spec.tokenizer)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return meta


def build_with(root: Path, spec: DataSpec) -> None:
    """Build recipe/, public/ and hidden/ under `root` from `<root>/sources/` (see the module doc)."""
    root = Path(root)
    missing = [dest for dest in source_dests(spec) if not (root / dest).is_file()]
    if missing:
        raise DataIntegrityError(
            f"{len(missing)} source file(s) are not in {root / SOURCES}, e.g. {missing[0]}: run "
            "`autoresearch tasks prepare parameter-golf` again to fetch them")
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    try:
        _recipe(root / SOURCES / "upstream", tmp / "recipe")
        (tmp / "public").mkdir()
        (tmp / "hidden").mkdir()
        meta = _hidden(root, tmp / "hidden", spec)
        meta["holdout_tokens"] = _public(root, tmp / "public", spec)
        (tmp / "hidden" / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
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
    """The plan's build for the real data (SP8192, 128 train shards, one validation shard)."""
    build_with(root, FULL)
