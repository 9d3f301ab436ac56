"""The scorer's data: the tokenizer, validation windows, and the tokens the trial's loader read.

- `encoder(public)`: the task's tokenizer (`/data/tokenizer/tokenizer.pkl`, a tiktoken
  encoding the build trained and checksummed), as `texts -> ids with BOS first`.
- `val_windows(...)`: the validation shard (`/hidden/val/shard_06542.parquet`), each document
  as BOS + tokens, concatenated, cut into windows of `seq_len` tokens that overlap by one, so
  every token after the first is a target exactly once with up to `seq_len - 1` of context.
- `tokens_read(...)`: the loader's ledger (`checkpoint/ledger/rank*.jsonl`, one line per row
  group read) priced with the build's own count of each row group's tokens
  (`/hidden/row_group_tokens.json`): what the harness counts against the token budget.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np

SHARD = re.compile(r"shard_\d{5}\.parquet")


class LedgerError(Exception):
    """The loader's ledger is missing or names data that was not given to the trial."""


def encoder(public: Path):
    """(encode(texts) -> [[BOS, ids...]], vocab size) of the task's tokenizer."""
    with open(public / "tokenizer" / "tokenizer.pkl", "rb") as f:  # harness-built, read-only /data
        enc = pickle.load(f)
    bos = enc.encode_single_token("<|bos|>")

    def encode(texts: list[str]) -> list[list[int]]:
        if len(texts) < 16:  # a CORE example: a thread pool per call would cost more than the encoding
            return [[bos, *enc.encode_ordinary(t)] for t in texts]
        return [[bos, *ids] for ids in enc.encode_ordinary_batch(texts, num_threads=4)]

    return encode, int(enc.n_vocab)


def val_windows(shard: Path, encode, seq_len: int, max_tokens: int) -> np.ndarray:
    """Rows of `seq_len` tokens (overlapping by one) from the start of the validation shard."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard)
    ids: list[int] = []
    for i in range(pf.num_row_groups):
        for doc in encode(pf.read_row_group(i, columns=["text"]).column("text").to_pylist()):
            ids.extend(doc)
        if len(ids) > max_tokens:
            break
    tokens = np.array(ids[:max_tokens + 1], dtype=np.int64)
    step = seq_len - 1
    rows = [tokens[k * step:k * step + seq_len] for k in range((len(tokens) - 1) // step)]
    rows = [r for r in rows if len(r) == seq_len]
    return np.stack(rows) if rows else np.zeros((0, seq_len), dtype=np.int64)


def tokens_read(ledger: Path, counts: dict[str, list[int]]) -> dict:
    """Harness-counted tokens of the training row groups the ledger lists, and its size.

    Raises:
        LedgerError: no ledger, a line that does not parse, or a row group that is not data
            the trial was given.
    """
    files = sorted(ledger.glob("rank*.jsonl")) if ledger.is_dir() else []
    total = groups = epochs = 0
    for f in files:
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            try:
                entry = json.loads(line)
                split, name, rg, epoch = entry["split"], entry["file"], int(entry["rg"]), int(entry["epoch"])
            except (ValueError, KeyError, TypeError):
                raise LedgerError(f"{f.name}:{n}: not a ledger line: {line[:80]!r}") from None
            if split != "train":
                continue
            if not SHARD.fullmatch(str(name)) or name not in counts or not 0 <= rg < len(counts[name]):
                raise LedgerError(f"{f.name}:{n}: row group {rg} of {name!r} is not training data of this task")
            total += counts[name][rg]
            groups += 1
            epochs = max(epochs, epoch)
    if not groups:
        raise LedgerError("the train phase logged no reads of training data (checkpoint/ledger/rank*.jsonl): the "
                          "data loader must log every row group it reads (_ar_ledger in nanochat/dataloader.py)")
    return {"tokens_read": total, "row_groups_read": groups, "epochs": epochs}


def checkpoint_meta(checkpoint: Path) -> dict:
    """The last `meta_<step>.json` of the checkpoint ({} if none parses): what it says of itself."""
    metas = sorted(checkpoint.glob("meta_*.json"))
    try:
        meta = json.loads(metas[-1].read_text()) if metas else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def trained_claim(meta: dict) -> int | None:
    """Tokens the metadata says were trained on (step x total batch), if it says."""
    try:
        return int(meta["step"]) * int(meta["total_batch_size"])
    except (KeyError, TypeError, ValueError):
        return None
