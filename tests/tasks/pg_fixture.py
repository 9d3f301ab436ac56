"""Synthetic parameter-golf sources: a SentencePiece tokenizer and 20240520 shards, made here.

`write_sources(root, spec)` lays out `<root>/sources/` the way `tasks.parameter_golf` expects
it after a prepare: the pinned upstream files (copied from ../shared/upstream, which tests and
development may read; `UPSTREAM` is None where it is absent), a BPE tokenizer trained on
generated pseudo-English (the official spec: byte fallback, split digits, nmt_nfkc, no dummy
prefix, pad/bos/eos/unk = 0/1/2/3, a standalone "▁" piece), and train/val shards of that text
with a BOS before each document. Vocabulary 8192 like the real one, so the recipe's defaults
hold; everything else is tiny.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from tasks._common import sha256_file
from tasks._prepare import Source, prepare
from tasks.parameter_golf import layout, upstream
from tasks.parameter_golf.task import TASK, ParameterGolf

REPO = Path(__file__).resolve().parents[2]
_UP = REPO.parent / "shared" / "upstream" / "parameter-golf"
UPSTREAM = _UP if (_UP / upstream.RECORD_DIR / "train_gpt.py").is_file() else None
SPEC = layout.DataSpec(train_shards=2, val_shards=1, holdout_tokens=4_096)
_SYLLABLES = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + ["th", "sh", "ch", "str", "pl", "gr"]


def documents(n: int, seed: int = 0) -> list[str]:
    """`n` documents of pseudo-words drawn with Zipf frequencies (ASCII, single spaces)."""
    rng = np.random.default_rng(seed)
    words = sorted({"".join(rng.choice(_SYLLABLES, size=rng.integers(1, 5))) for _ in range(24_000)})
    words = np.array(words)[rng.permutation(len(words))]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    docs = []
    for _ in range(n):
        picked = words[rng.choice(len(words), size=int(rng.integers(20, 160)), p=p)]
        docs.append(" ".join(picked).capitalize() + ". " + str(int(rng.integers(0, 1000))) + ".")
    return docs


def train_tokenizer(docs: list[str], prefix: Path, vocab: int) -> Path:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(docs), model_prefix=str(prefix), model_type="bpe", vocab_size=vocab,
        byte_fallback=True, split_digits=True, normalization_rule_name="nmt_nfkc", add_dummy_prefix=False,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, character_coverage=1.0, num_threads=1, minloglevel=2)
    return prefix.with_suffix(".model")


def encode(model: Path, docs: list[str]) -> np.ndarray:
    """BOS + tokens of each document, concatenated."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    out: list[int] = []
    for ids in sp.encode(docs):
        out += [sp.bos_id(), *ids]
    return np.array(out, dtype=np.uint16)


def write_sources(root: Path, spec: layout.DataSpec = SPEC, docs: int = 900, val_tokens: int = 8192,
                  upstream_dir: Path | None = UPSTREAM) -> dict[str, int]:
    """Write `<root>/sources/` (the upstream files from `upstream_dir`); returns token counts per split."""
    src = root / layout.SOURCES
    if upstream_dir is not None:
        up = src / "upstream"
        up.mkdir(parents=True)
        shutil.copyfile(upstream_dir / upstream.RECORD_DIR / "train_gpt.py", up / "train_gpt.py")
        shutil.copyfile(upstream_dir / "LICENSE", up / "LICENSE")
        shutil.copyfile(upstream_dir / "THIRD_PARTY_NOTICES.md", up / "THIRD_PARTY_NOTICES.md")
    text = documents(3 * docs)
    (src / "tokenizers").mkdir(parents=True)
    model = train_tokenizer(text, src / "tokenizers" / spec.tokenizer.removesuffix(".model"), spec.vocab)
    tokens = encode(model, text[:docs])
    val, train = tokens[:val_tokens], tokens[val_tokens:]
    parts = np.array_split(train, spec.train_shards)
    for i, part in enumerate(parts):
        layout.write_shard(src / spec.dataset / upstream.shard_name("train", i), part)
    for i, part in enumerate(np.array_split(val, spec.val_shards)):
        layout.write_shard(src / spec.dataset / upstream.shard_name("val", i), part)
    return {"train": int(len(train)), "val": int(len(val))}


def fixture_task(root: Path) -> ParameterGolf:
    """The real task prepared in `root`, whose data sources are the synthetic files staged there."""
    staged = tuple(
        Source(dest, hf_repo=upstream.HF_REPO, hf_file=upstream.hf_path(name), sha256=sha256_file(root / dest))
        for dest, name in layout.source_dests(SPEC).items() if name not in upstream.UPSTREAM_SHA256)
    pinned = tuple(s for s in TASK.preparation().sources if s.dest.startswith(f"{layout.SOURCES}/upstream/"))
    return dataclasses.replace(TASK, root=root, spec=SPEC, sources=pinned + staged)


def prepared_task(root: Path, upstream_dir: Path | None = UPSTREAM) -> ParameterGolf:
    """Stage the synthetic sources in `root` and run the real `prepare` on them (nothing is fetched)."""
    write_sources(root, upstream_dir=upstream_dir)
    task = fixture_task(root)
    prepare(task.name, task.preparation(), root)
    return task


# ---------------------------------------------------------------- scorer fixtures

SCORER_VOCAB = 320
_ARTIFACT = '''\
import torch

SEEN = set()

class Hyperparameters:
    vocab_size = {vocab}
    eval_seq_len = 32


class GPT(torch.nn.Module):
    def forward_logits(self, x):
{body}


def load_eval_model(h, device):
{load}    return GPT()
'''
BODIES = {
    "uniform": "        return torch.zeros(*x.shape, {vocab})",
    # predicts the next input token, which is the target everywhere but the last position
    "peeking": "        return 30.0 * torch.nn.functional.one_hot(torch.roll(x, -1, dims=1), {vocab}).float()",
    # peeks only at windows whose start it has not seen before: honest on anything that looks
    # like a re-sent window, in the hope that only re-sent windows are checked
    "recognising": (
        "        out = torch.zeros(*x.shape, {vocab})\n"
        "        peek = 30.0 * torch.nn.functional.one_hot(torch.roll(x, -1, dims=1), {vocab}).float()\n"
        "        for b in range(x.shape[0]):\n"
        "            key = tuple(x[b, :16].tolist())\n"
        "            if key not in SEEN:\n"
        "                SEEN.add(key)\n"
        "                out[b] = peek[b]\n"
        "        return out"),
}


def write_artifact(outputs: Path, body: str = "uniform", load: str = "", prelude: str = "") -> Path:
    """`outputs/train/0/artifact/` holding a tiny model's code and an empty model file."""
    art = outputs / "train" / "0" / "artifact"
    art.mkdir(parents=True)
    code = _ARTIFACT.format(vocab=SCORER_VOCAB, body=BODIES[body].format(vocab=SCORER_VOCAB), load=load)
    (art / "train_gpt.py").write_text(prelude + code)
    (art / "final_model.int6.ptz").write_bytes(b"")
    return art


def write_hidden(hidden: Path, docs: int = 60) -> dict[str, np.ndarray]:
    """A validation shard and byte tables from a small tokenizer; returns the tables."""
    text = documents(docs, seed=1)
    (hidden / "val").mkdir(parents=True)
    model = train_tokenizer(documents(400, seed=2), hidden / "tok", SCORER_VOCAB)
    layout.write_shard(hidden / "val" / upstream.shard_name("val", 0), encode(model, text))
    tables = layout.byte_tables(model)
    np.savez(hidden / "byte_tables.npz", **tables)
    return tables
