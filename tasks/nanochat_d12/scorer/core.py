"""The CORE metric (DCLM's 22 in-context tasks), as the harness computes it: no torch here.

A task is a JSONL file of examples of one of three kinds. Every example becomes a few token
rows (BOS first) and, per row, the positions whose next-token predictions decide it:

- multiple_choice `{query, choices, gold}`: one row per choice, `query + delimiter + choice`
  after the few-shot examples; the scored positions are the choice's tokens (what follows the
  rows' common prefix); the prediction is the choice with the lowest mean loss there.
- schema `{context_options, continuation, gold}`: one row per context option,
  `option + delimiter + continuation`; scored: the common suffix (the continuation); the
  prediction is the option with the lowest mean loss.
- language_modeling `{context, continuation}`: one row, `context.strip() + delimiter +
  continuation`; scored: the continuation's tokens (after the tokens of the stripped prefix);
  correct when greedy decoding reproduces every one of them.

Few-shot examples (`num_fewshot` of them) precede each prompt, separated by blank lines:
`query + delimiter + gold choice` (MC), `gold option + delimiter + continuation` (schema),
`context.strip() + delimiter + continuation` (LM). The protocol follows nanochat's
`base_eval.py` at the pinned commit, so scores compare with upstream's: the examples are
shuffled with `random.Random(1337)` before any cut (`max_per_task`, -1 = all, the leaderboard
convention), and example i's few-shot examples are `random.Random(1234 + i).sample` of the
other indices. Accuracy per task is centred on its random baseline (percent, from
`eval_meta_data.csv`): (acc - b/100) / (1 - b/100); CORE is the mean over tasks.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

Encode = Callable[[list[str]], list[list[int]]]  # texts -> token ids, BOS prepended
KINDS = ("multiple_choice", "schema", "language_modeling")


@dataclass(frozen=True)
class TaskSpec:
    label: str
    kind: str
    path: Path
    fewshot: int
    delimiter: str
    baseline: float  # random baseline, percent


@dataclass(frozen=True)
class Rows:
    """One example as token rows: tokens per row, scored positions [lo, hi) of next-token targets."""

    tokens: tuple[tuple[int, ...], ...]
    spans: tuple[tuple[int, int], ...]
    kind: str
    gold: int


def load_tasks(bundle: Path) -> list[TaskSpec]:
    """The tasks of `bundle/core.yaml`, with their baselines from `eval_meta_data.csv`."""
    config = yaml.safe_load((bundle / "core.yaml").read_text(encoding="utf-8"))
    with open(bundle / "eval_meta_data.csv", encoding="utf-8", newline="") as f:
        baselines = {row["Eval Task"]: float(row["Random baseline"]) for row in csv.DictReader(f)}
    out = []
    for t in config["icl_tasks"]:
        if t["icl_task_type"] not in KINDS:
            raise ValueError(f"task {t['label']}: unknown type {t['icl_task_type']!r}")
        out.append(TaskSpec(label=t["label"], kind=t["icl_task_type"], path=bundle / "eval_data" / t["dataset_uri"],
                            fewshot=int(t["num_fewshot"][0]), delimiter=t.get("continuation_delimiter", " "),
                            baseline=baselines[t["label"]]))
    return out


def load_examples(task: TaskSpec, max_per_task: int = -1) -> list[dict]:
    """The task's examples in the protocol's order (shuffled with seed 1337), cut if asked."""
    with open(task.path, encoding="utf-8") as f:
        data = [json.loads(line) for line in f if line.strip()]
    random.Random(1337).shuffle(data)
    return data[:max_per_task] if max_per_task > 0 else data


def fewshot_of(data: Sequence[dict], i: int, k: int) -> list[dict]:
    """Example i's few-shot examples: k of the others, drawn with seed 1234 + i."""
    if k <= 0:
        return []
    # the same draw as sampling the list of the other indices: position j of that list is j, or j + 1 past i
    return [data[j + (j >= i)] for j in random.Random(1234 + i).sample(range(len(data) - 1), k)]


def prompts(kind: str, item: dict, shots: list[dict], d: str) -> list[str]:
    """The texts of one example's rows (for LM: the prompt without, then with the continuation)."""
    if kind == "multiple_choice":
        prefix = "".join(f"{s['query']}{d}{s['choices'][s['gold']]}\n\n" for s in shots)
        return [f"{prefix}{item['query']}{d}{c}" for c in item["choices"]]
    if kind == "schema":
        prefix = "".join(f"{s['context_options'][s['gold']]}{d}{s['continuation']}\n\n" for s in shots)
        return [f"{prefix}{c}{d}{item['continuation']}" for c in item["context_options"]]
    prefix = "".join(f"{s['context'].strip()}{d}{s['continuation']}\n\n" for s in shots)
    head = f"{prefix}{item['context'].strip()}{d}"
    return [head.strip(), head + item["continuation"]]


def _common(seqs: list[list[int]], reverse: bool) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        at = -1 - i if reverse else i
        if any(s[at] != seqs[0][at] for s in seqs):
            return i
    return n


def to_rows(kind: str, item: dict, texts: list[str], encode: Encode, limit: int) -> Rows:
    """Token rows and scored spans of one example; rows longer than `limit` keep their last tokens."""
    toks = encode(texts)
    if kind == "multiple_choice":
        start = _common(toks, reverse=False)
        spans = [(start, len(t)) for t in toks]
    elif kind == "schema":
        suffix = _common(toks, reverse=True)
        spans = [(len(t) - suffix, len(t)) for t in toks]
    else:
        without, with_ = toks
        if with_[:len(without)] != without or len(with_) <= len(without):
            raise ValueError("language_modeling: the prompt without the continuation is not a prefix of the prompt")
        toks, spans = [with_], [(len(without), len(with_))]
    rows, out_spans = [], []
    for t, (s, e) in zip(toks, spans):
        cut = max(0, len(t) - limit)
        rows.append(tuple(t[cut:]))
        out_spans.append((s - cut - 1, e - cut - 1))  # position p predicts token p + 1
    return Rows(tokens=tuple(rows), spans=tuple(out_spans), kind=kind, gold=int(item.get("gold", 0)))


def task_rows(task: TaskSpec, encode: Encode, limit: int, max_per_task: int = -1) -> list[Rows]:
    """Every example of `task` as `Rows`, in the protocol's order."""
    data = load_examples(task, max_per_task)
    return [to_rows(task.kind, item, prompts(task.kind, item, fewshot_of(data, i, task.fewshot), task.delimiter),
                    encode, limit) for i, item in enumerate(data)]


def decide(rows: Rows, nll: list[list[float]], argmax: list[list[int]]) -> bool:
    """Whether the model answers the example right, from its losses and greedy tokens on the spans."""
    if rows.kind == "language_modeling":
        (lo, hi), = rows.spans
        return list(argmax[0]) == list(rows.tokens[0][lo + 1:hi + 1])
    means = [sum(x) / len(x) if len(x) else float("inf") for x in nll]  # an empty span (a duplicate choice) never wins
    return means.index(min(means)) == rows.gold


def centred(accuracy: float, baseline_percent: float) -> float:
    b = 0.01 * baseline_percent
    return (accuracy - b) / (1.0 - b)


def core(accuracies: dict[str, float], tasks: list[TaskSpec]) -> dict:
    """Per-task accuracy and centred accuracy, and CORE (their mean)."""
    base = {t.label: t.baseline for t in tasks}
    cent = {label: centred(acc, base[label]) for label, acc in accuracies.items()}
    return {"accuracy": accuracies, "centered": cent, "core": sum(cent.values()) / len(cent) if cent else None}
