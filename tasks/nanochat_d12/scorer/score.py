"""nanochat-d12 scorer: CORE and validation bpb of the trained checkpoint, and the tokens it read.

Standalone (stdlib, numpy, pyyaml, pyarrow, tiktoken; torch only inside the model worker). It
runs in the scorer sandbox, which alone sees `/hidden`: the CORE bundle (`eval_bundle/`), the
validation shard (`val/shard_06542.parquet`), `row_group_tokens.json` and `token_bytes.npy`.
For each seed's outputs (`/outputs/train/<i>/`: `checkpoint/` and the `nanochat/` package the
train phase ran) it does, in order:

1. Tokens read (data.py): the loader's ledger priced with the build's token counts; over the
   budget is for `finalize` to judge. A checkpoint that claims more trained tokens than the
   ledger read is `ledger` (the ledger under-reports), as is a missing or foreign ledger.
2. One model worker per GPU (worker.py under landlock.py: the trial's code cannot read
   /hidden nor write /result) builds the model with the trial's own checkpoint loader. Its
   depth must be `--depth` (`depth`).
3. CORE (core.py) over every example of every task (`--max-per-task -1`): the harness
   renders, tokenizes and decides; the worker only answers losses and greedy tokens on the
   scored positions, checked batch by batch (session.py: `inconsistent`, `acausal`).
4. Validation bpb on the first `--bpb-tokens` tokens of the validation shard: the harness's
   windows, targets and byte counts (`token_bytes.npy`: UTF-8 bytes per token, specials 0).

Result (AR_RESULT, and the last line of stdout): {"valid", "core", "centered", "accuracy",
"val_bpb", "tokens_read", "tokens_trained_claim", "n_layer", "isolation", ...}; with several
seeds the means and "per_seed". Failure kinds: crash, malformed, inconsistent, acausal, depth,
ledger.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

import core
import data
from landlock import abi
from session import Invalid, Session

HERE = Path(__file__).resolve().parent


def gpu_ids() -> list[str]:
    ids = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return ids or [""]


MODEL_ENV = ("NANOCHAT_DTYPE", "TORCHDYNAMO_DISABLE", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_KERNELS_CACHE")


def worker_env(args, gpu: str, home: Path) -> dict[str, str]:
    """The trial's settings that shape the model (dtype, attention kernel), and paths of the worker's own."""
    env = {k: v for k, v in args.trial_env.items() if k in MODEL_ENV}
    env.update({"HF_HOME": str(home / ".hf"), "TORCHINDUCTOR_CACHE_DIR": str(home / ".inductor"),
                "TRITON_CACHE_DIR": str(home / ".triton"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home), "TMPDIR": str(home), "AR_DATA": os.environ.get("AR_DATA", "/data"),
                "AR_PHASE": "score", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": os.environ.get("AR_THREADS", "1"),
                "CUDA_VISIBLE_DEVICES": gpu})
    return env


def start_workers(args, base: Path, work: Path, seed: int) -> list[Session]:
    deny = [os.environ.get("AR_HIDDEN", "/hidden"), str(Path(os.environ.get("AR_RESULT", "/result/x")).parent)]
    sessions = []
    for r, gpu in enumerate(gpu_ids()):
        home = work / f"worker{r}"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(HERE / "landlock.py")]
        for d in deny:
            cmd += ["--deny", d]
        cmd += ["--rw", str(home), "--rw", "/dev", "--", sys.executable, str(HERE / "worker.py"), str(base),
                str(base / "checkpoint")]
        sessions.append(Session.start(cmd, worker_env(args, gpu, home), home, work / f"worker{r}.log", seed * 97 + r))
    return sessions


def run_batches(sessions: list[Session], batches: list) -> list:
    """Send `batches` (lists of (tokens, span)) through the sessions, one thread each; answers in order."""
    todo: queue.Queue = queue.Queue()
    for i, b in enumerate(batches):
        todo.put((i, b))
    out: list = [None] * len(batches)
    errors: list[BaseException] = []

    def work(s: Session) -> None:
        while not errors:
            try:
                i, batch = todo.get_nowait()
            except queue.Empty:
                return
            try:
                out[i] = s.ask([np.asarray(t, np.int64) for t, _ in batch], [span for _, span in batch])
            except (Invalid, OSError, ValueError) as e:
                errors.append(e if isinstance(e, Invalid) else Invalid("crash", f"{type(e).__name__}: {e}"))

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def batched(items: list, size_of, max_tokens: int, max_rows: int) -> list[list]:
    """Consecutive items grouped so that each group's rows x longest row stays within the bounds."""
    groups, cur, rows, width = [], [], 0, 0
    for it in items:
        n, w = size_of(it)
        if cur and ((rows + n) * max(width, w) > max_tokens or rows + n > max_rows):
            groups.append(cur)
            cur, rows, width = [], 0, 0
        cur.append(it)
        rows, width = rows + n, max(width, w)
    return groups + ([cur] if cur else [])


def score_core(sessions, tasks, encode, limit: int, args) -> dict:
    accuracies = {}
    for task in tasks:
        examples = core.task_rows(task, encode, limit, args.max_per_task)
        groups = batched(examples, lambda e: (len(e.tokens), max(map(len, e.tokens))), args.batch_tokens, args.batch_rows)
        answers = run_batches(sessions, [[(t, s) for e in g for t, s in zip(e.tokens, e.spans)] for g in groups])
        right = 0
        for g, (nll, top) in zip(groups, answers):
            k = 0
            for e in g:
                n = len(e.tokens)
                right += core.decide(e, nll[k:k + n], top[k:k + n])
                k += n
        accuracies[task.label] = right / len(examples) if examples else 0.0
    return core.core(accuracies, tasks)


def score_bpb(sessions, windows: np.ndarray, token_bytes: np.ndarray, args) -> dict:
    seq = windows.shape[1]
    per = max(1, min(args.batch_rows, args.batch_tokens // seq))
    batches = [[(w, (0, seq - 1)) for w in windows[i:i + per]] for i in range(0, len(windows), per)]
    nats = nbytes = 0.0
    for batch, (nll, _top) in zip(batches, run_batches(sessions, batches)):
        for (w, _), losses in zip(batch, nll):
            b = token_bytes[w[1:]]
            nats += float(losses[b > 0].sum())
            nbytes += float(b.sum())
    return {"val_bpb": nats / (math.log(2) * nbytes) if nbytes else None, "bpb_targets": int(windows.shape[0] * (seq - 1))}


def score_seed(i: int, args, ctx: dict) -> dict:
    base = Path(os.environ.get("AR_OUTPUTS", "/outputs")) / args.phase / str(i)
    out: dict = {"seed_index": i, "isolation": f"landlock-abi{abi()}" if abi() else "none"}
    sessions: list[Session] = []
    try:
        if not (base / "checkpoint").is_dir() or not (base / "nanochat").is_dir():
            raise Invalid("crash", f"the train phase left no checkpoint/ and nanochat/ for seed {i}")
        try:
            out.update(data.tokens_read(base / "checkpoint" / "ledger", ctx["counts"]))
        except data.LedgerError as e:
            raise Invalid("ledger", str(e)) from None
        meta = data.checkpoint_meta(base / "checkpoint")
        out["attention"] = meta.get("attention")  # the recipe's own word: which attention path trained
        claim = out["tokens_trained_claim"] = data.trained_claim(meta)
        if claim is not None and claim > out["tokens_read"]:
            raise Invalid("ledger", f"the checkpoint says it trained on {claim:,} tokens, but its loader logged reading "
                                    f"only {out['tokens_read']:,}: the ledger leaves out data it read")
        t0 = time.monotonic()
        sessions = start_workers(args, base, Path.cwd() / f"seed{i}", i)
        ready = sessions[0].ready
        out.update(n_layer=ready["n_layer"], params=ready["params"], workers=len(sessions), load_s=ready["load_s"])
        if ready["vocab"] != ctx["vocab"]:
            raise Invalid("malformed", f"the model's vocabulary is {ready['vocab']}, the tokenizer's {ctx['vocab']}")
        if args.depth and ready["n_layer"] != args.depth:
            raise Invalid("depth", f"the model has {ready['n_layer']} layers; this task fixes the depth at {args.depth}")
        out.update(score_core(sessions, ctx["tasks"], ctx["encode"], int(ready["limit"]), args))
        out["core_s"] = round(time.monotonic() - t0, 3)
        windows = data.val_windows(ctx["val"], ctx["encode"], int(ready["sequence_len"]), args.bpb_tokens)
        out.update(score_bpb(sessions, windows, ctx["token_bytes"], args))
        out.update(valid=True, probes=sum(s.probes for s in sessions), challenges=sum(s.challenges for s in sessions))
    except Invalid as e:
        tail = sessions[0].tail() if sessions and e.kind == "crash" else ""
        out.update(valid=False, invalid_kind=e.kind, reason=(f"{e} {tail}" if tail else str(e))[:1500], core=None)
    finally:
        for s in sessions:
            s.close()
    return out


def combine(results: list[dict]) -> dict:
    if len(results) == 1:
        return results[0]
    bad = [r for r in results if not r["valid"]]
    out = dict(bad[0]) if bad else dict(results[0])
    if not bad:
        for key in ("core", "val_bpb", "tokens_read"):
            out[key] = float(np.mean([r[key] for r in results]))
        out["tokens_read"] = int(max(r["tokens_read"] for r in results))
    out["per_seed"] = results
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="nanochat-d12 scorer")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE of the trial phases' environment")
    p.add_argument("--phase", default="train")
    p.add_argument("--depth", type=int, default=12, help="the depth the task fixes (0: any)")
    p.add_argument("--max-per-task", type=int, default=-1, help="CORE examples per task (-1: all)")
    p.add_argument("--bpb-tokens", type=int, default=20 * 524288)
    p.add_argument("--batch-tokens", type=int, default=16384)
    p.add_argument("--batch-rows", type=int, default=64)
    args = p.parse_args(argv)
    args.trial_env = dict(kv.split("=", 1) for kv in args.env)
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    hidden, public = Path(os.environ.get("AR_HIDDEN", "/hidden")), Path(os.environ.get("AR_DATA", "/data"))
    encode, vocab = data.encoder(public)
    ctx = {"encode": encode, "vocab": vocab, "tasks": core.load_tasks(hidden / "eval_bundle"),
           "counts": json.loads((hidden / "row_group_tokens.json").read_text()),
           "token_bytes": np.load(hidden / "token_bytes.npy"), "val": hidden / "val" / "shard_06542.parquet"}
    seeds = int(os.environ.get("AR_SEEDS") or 1)
    result = combine([score_seed(i, args, ctx) for i in range(seeds)])
    text = json.dumps(result, sort_keys=True)
    if os.environ.get("AR_RESULT"):
        Path(os.environ["AR_RESULT"]).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
