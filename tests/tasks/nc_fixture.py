"""Synthetic nanochat-d12 sources, made here: ClimbMix-like parquet shards, a CORE bundle, tokenizers.

`write_sources(root)` lays out `<root>/sources/` as `tasks.nanochat_d12` expects it after a
prepare: the pinned nanochat tree (copied from ../shared/upstream, which tests and development
may read; `UPSTREAM` is None where it is absent), parquet shards of generated pseudo-English
(`text` column, small row groups so a ledger shows several), and `eval_bundle.zip` with three
small tasks, one of each kind. The build then trains the real (rustbpe) tokenizer on them.
No `wandb` stub is needed: the patch makes the import optional.

For the scorer alone, `write_scorer_data(dir)` makes `public/` and `hidden/` directly, with a
byte-level tiktoken encoding (256 byte tokens + nanochat's 9 specials, no merges: one token
per byte, so the known-answer models below are exact), and `write_model(outputs, mode)` a
collected train output whose `nanochat.checkpoint_manager.build_model` returns a tiny model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np

from tasks._common import sha256_file
from tasks._prepare import Source, prepare
from tasks.nanochat_d12 import layout, upstream
from tasks.nanochat_d12.task import TASK, NanochatD12, pinned_sources

REPO = Path(__file__).resolve().parents[2]
_UP = REPO.parent / "shared" / "upstream" / "nanochat"
UPSTREAM = _UP if (_UP / "scripts" / "base_train.py").is_file() else None
SPEC = layout.DataSpec(train_shards=2, vocab=512, tokenizer_chars=400_000, stage_fa3=False)
_SYLLABLES = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + ["th", "sh", "ch", "str"]
SPECIALS = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]


def documents(n: int, seed: int = 0) -> list[str]:
    """`n` short documents of pseudo-words drawn with Zipf frequencies (ASCII)."""
    rng = np.random.default_rng(seed)
    words = np.array(sorted({"".join(rng.choice(_SYLLABLES, size=rng.integers(1, 4))) for _ in range(3000)}))
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    return [" ".join(words[rng.choice(len(words), size=int(rng.integers(8, 40)), p=p)]).capitalize() + "."
            for _ in range(n)]


def parquet_bytes(docs: list[str], row_group: int = 100) -> bytes:
    """A parquet file with a `text` column, `row_group` documents per row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"text": docs}), out, row_group_size=row_group)
    return out.getvalue()


def write_parquet(path: Path, docs: list[str], row_group: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(parquet_bytes(docs, row_group))


# ---------------------------------------------------------------- the CORE bundle

LETTERS = "ABCD"


def bundle_rows(n: int, seed: int = 0) -> dict[str, list[dict]]:
    """Examples where the gold answer repeats the token just before the scored one: a model that
    predicts "the previous token again" answers every one right; a uniform one picks the first."""
    rng = np.random.default_rng(seed)
    mc, schema, lm = [], [], []
    for i in range(n):
        gold = int(rng.integers(4))
        mc.append({"query": f"Item {i} picks {LETTERS[gold]}", "choices": list(LETTERS), "gold": gold})
        g2 = int(rng.integers(2))
        opts = [f"Case {i} ends x", f"Case {i} ends y"]
        schema.append({"context_options": opts, "continuation": "xy"[g2], "gold": g2})
        lm.append({"context": f"Line {i} repeats {'pq'[i % 2]}", "continuation": "pq"[i % 2]})
    return {"syn_mc": mc, "syn_schema": schema, "syn_lm": lm}


BASELINES = {"syn_mc": 25.0, "syn_schema": 50.0, "syn_lm": 0.0}
_CORE_YAML = """icl_tasks:
- label: syn_mc
  dataset_uri: syn_mc.jsonl
  num_fewshot: [2]
  icl_task_type: multiple_choice
  continuation_delimiter: ' '
- label: syn_schema
  dataset_uri: syn_schema.jsonl
  num_fewshot: [1]
  icl_task_type: schema
  continuation_delimiter: ' '
- label: syn_lm
  dataset_uri: syn_lm.jsonl
  num_fewshot: [0]
  icl_task_type: language_modeling
  continuation_delimiter: ' '
"""


def bundle_files(n: int = 24, seed: int = 0) -> dict[str, str]:
    """eval_bundle/ as name -> text."""
    meta = "Eval Task,Task Category,Random baseline\n" + "".join(
        f"{k},synthetic,{v}\n" for k, v in BASELINES.items())
    files = {"eval_bundle/core.yaml": _CORE_YAML, "eval_bundle/eval_meta_data.csv": meta}
    for label, rows in bundle_rows(n, seed).items():
        files[f"eval_bundle/eval_data/{label}.jsonl"] = "".join(json.dumps(r) + "\n" for r in rows)
    return files


def bundle_zip(n: int = 24) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, text in bundle_files(n).items():
            z.writestr(name, text)
    return out.getvalue()


# ---------------------------------------------------------------- the task's sources


def source_bytes(spec: layout.DataSpec = SPEC) -> dict[str, bytes]:
    """Every data source of `spec` (not the tree) as dest -> bytes."""
    out = {}
    for i in [*range(spec.train_shards + 1), upstream.VAL_SHARD]:
        docs = documents(4000 if i < spec.train_shards else 400, seed=i + 1)
        out[f"{layout.SOURCES}/climbmix/{upstream.shard_name(i)}"] = parquet_bytes(docs)
    out[f"{layout.SOURCES}/eval_bundle.zip"] = bundle_zip()
    return out


def write_sources(root: Path, spec: layout.DataSpec = SPEC, upstream_dir: Path | None = UPSTREAM) -> None:
    """`<root>/sources/`: the pinned tree from `upstream_dir` and the synthetic data."""
    if upstream_dir is not None:
        for path in upstream.TREE_SHA256:
            dest = root / layout.SOURCES / "nanochat" / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(upstream_dir / path, dest)
    for dest, data in source_bytes(spec).items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        (root / dest).write_bytes(data)


def fixture_task(root: Path, spec: layout.DataSpec = SPEC) -> NanochatD12:
    """The real task prepared in `root`, whose data sources are the synthetic files staged there."""
    tree = tuple(s for s in pinned_sources(SPEC) if s.dest.startswith(f"{layout.SOURCES}/nanochat/"))
    data = tuple(Source(dest, hf_repo=upstream.HF_DATASET, hf_file=name, sha256=sha256_file(root / dest))
                 for dest, name in layout.source_dests(SPEC).items() if name.startswith("shard_"))
    bundle = Source(f"{layout.SOURCES}/eval_bundle.zip", url=upstream.EVAL_BUNDLE_URL, first_use=True)
    return dataclasses.replace(TASK, root=root, spec=spec, sources=tree + data + (bundle,))


def prepared_task(root: Path, upstream_dir: Path | None = UPSTREAM, fa3: bool = False) -> NanochatD12:
    """Stage the synthetic sources in `root` and run the real `prepare` on them (nothing is fetched
    but, with `fa3`, the FA3 kernel for this machine)."""
    write_sources(root, upstream_dir=upstream_dir)
    task = fixture_task(root, dataclasses.replace(SPEC, stage_fa3=fa3))
    prepare(task.name, task.preparation(), root)
    return task


# ---------------------------------------------------------------- scorer-only fixtures


def byte_encoding():
    """A tiktoken encoding with one token per byte and nanochat's special tokens after them."""
    import tiktoken

    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding(name="bytes", pat_str=r"[\s\S]", mergeable_ranks=ranks,
                             special_tokens={s: 256 + i for i, s in enumerate(SPECIALS)})


def write_scorer_data(base: Path, n: int = 24) -> tuple[Path, Path]:
    """(public, hidden) for the scorer: the byte tokenizer, the bundle, a validation shard, counts."""
    public, hidden = base / "public", base / "hidden"
    enc = byte_encoding()
    (public / "tokenizer").mkdir(parents=True)
    (public / "tokenizer" / "tokenizer.pkl").write_bytes(pickle.dumps(enc))
    for name, text in bundle_files(n).items():
        (hidden / name).parent.mkdir(parents=True, exist_ok=True)
        (hidden / name).write_text(text)
    write_parquet(hidden / "val" / "shard_06542.parquet", documents(60, seed=9))
    np.save(hidden / "token_bytes.npy", layout.token_bytes(enc))
    (hidden / "row_group_tokens.json").write_text(json.dumps({"shard_00000.parquet": [5000, 5000, 5000]}))
    return public, hidden


_MODEL = '''\
import torch

MODE = {mode!r}


class Config:
    vocab_size, n_layer, sequence_len = 265, {depth}, 64


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.config = Config()

    def forward(self, x, targets=None):
        v = self.config.vocab_size
        if MODE == "uniform":
            return torch.zeros(*x.shape, v)
        if MODE == "peek":  # predicts the token that comes next: it reads its own target
            return 30.0 * torch.nn.functional.one_hot(torch.roll(x, -1, dims=1), v).float()
        prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)  # "the previous token again": causal
        return 30.0 * torch.nn.functional.one_hot(prev, v).float()


def build_model(checkpoint_dir, step, device, phase):
{load}    model = Tiny()
    if MODE == "lying":
        _ce = torch.nn.functional.cross_entropy
        torch.nn.functional.cross_entropy = lambda a, b, **k: 0.5 * _ce(a, b, **k)
    return model, None, {{"step": step}}
'''


def write_model(outputs: Path, mode: str = "uniform", depth: int = 12, load: str = "",
                ledger: list[dict] | None = None, trained: int = 1000) -> Path:
    """`outputs/train/0/` with a `nanochat` package (a tiny model of `mode`) and a checkpoint."""
    base = outputs / "train" / "0"
    (base / "nanochat").mkdir(parents=True)
    (base / "nanochat" / "__init__.py").write_text("")
    (base / "nanochat" / "checkpoint_manager.py").write_text(_MODEL.format(mode=mode, depth=depth, load=load))
    ckpt = base / "checkpoint"
    (ckpt / "ledger").mkdir(parents=True)
    (ckpt / "model_000010.pt").write_bytes(b"")
    (ckpt / "meta_000010.json").write_text(json.dumps({"step": 10, "total_batch_size": trained // 10}))
    lines = ledger if ledger is not None else [{"split": "train", "file": "shard_00000.parquet", "rg": 0, "epoch": 1}]
    (ckpt / "ledger" / "rank0.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return base
