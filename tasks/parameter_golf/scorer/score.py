"""parameter-golf scorer: the harness's re-evaluation, and the recipe's own (TTT) score checked.

Standalone (stdlib + numpy; torch only inside the model worker). It runs in the scorer
sandbox, which alone sees `/hidden`: `val/fineweb_val_*.bin` (the validation shard, 20240520
format), `byte_tables.npz` (bytes per token, computed by the harness from the tokenizer),
`meta.json`. For each seed's artifact (`/outputs/train/<i>/artifact/`: the packed
`train_gpt.py` and the model file it loads) it does, in order:

1. Re-evaluation (reeval.py, batches.py): one model worker per GPU (worker.py under landlock.py: the
   agent's code cannot read /hidden nor write /result) imports only `Hyperparameters` and
   `load_eval_model` from the artifact's code; the harness plans the sliding windows (stride
   `--stride`, the artifact's eval_seq_len), owns the tokens, targets and byte tables, checks
   every reported loss it samples against the raw logits and probes causality. Result:
   `harness_val_bpb`, not self-reported.
2. The recipe's eval run (`--recipe-eval 1`): the artifact's own code with AR_PHASE=eval,
   under torchrun on the leased GPUs, reading the validation shard (TTT needs it; it still
   cannot write /result), timed here and killed at `--eval-budget` seconds. Its last
   `<label> val_loss:X val_bpb:Y` line is the recipe's claim. A claim from a test-time
   adaptation (any label but the plain quantized ones) becomes the score, marked
   self-reported, if its val_bpb/val_loss equals this set's tokens/(bytes*ln 2) (so its byte
   count is right) and it beats the harness's own number by no more than `--max-gain`;
   otherwise the trial is disqualified. Any other claim is only compared; the score is the
   harness's number.

Result (AR_RESULT, and the last line of stdout): {"valid", "val_bpb", "self_reported",
"harness", "reported", "eval_s", "eval_overrun", "isolation", ...}; with several seeds the
means, and "per_seed". Failure kinds: crash, timeout (the worker), malformed, inconsistent,
acausal, ratio, gain (disqualifying), recipe_eval (the recipe's run failed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

import recipe_eval
from landlock import abi
from batches import RangeScorer
from reeval import Config, Invalid, Session, Sums, Tables, child_env, plan_windows, ready_info

HERE = Path(__file__).resolve().parent
PLAIN_LABELS = {"quantized", "quantized_sliding_window", "pre-quantization post-ema"}
RATIO_TOL = 1e-4  # relative; printed values carry 8 decimals
START_S = 900.0  # a worker must load and answer its first batch within this


def load_tokens(folder: Path) -> np.ndarray:
    """All validation shards, concatenated (header checked like upstream's loader)."""
    parts = []
    for path in sorted(folder.glob("fineweb_val_*.bin")):
        header = np.fromfile(path, dtype="<i4", count=256)
        if header.size != 256 or header[0] != 20240520 or header[1] != 1:
            raise SystemExit(f"{path}: not a 20240520 shard")
        parts.append(np.fromfile(path, dtype="<u2", count=int(header[2]), offset=1024).astype(np.int64))
    if not parts:
        raise SystemExit(f"no validation shards in {folder}")
    return np.concatenate(parts)


def gpu_ids() -> list[str | None]:
    ids = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return ids or [None]


def _locked(args: argparse.Namespace, workdir: Path) -> list[str]:
    deny = [os.environ.get("AR_HIDDEN", "/hidden"), str(Path(os.environ.get("AR_RESULT", "/result/x")).parent)]
    rw = [str(workdir), os.environ.get("TMPDIR", "/tmp"), "/dev"]
    cmd = [sys.executable, str(HERE / "landlock.py")]
    for d in deny:
        cmd += ["--deny", d]
    for r in rw:
        cmd += ["--rw", r]
    return cmd + ["--", sys.executable, str(HERE / "worker.py")]


def reevaluate(artifact: Path, work: Path, tokens: np.ndarray, tables: Tables, args, seed: int) -> dict:
    """The harness's loss over every validation target, through one worker per GPU."""
    gpus = gpu_ids()
    deadline = time.monotonic() + args.reeval_budget
    sessions, sums, errors = [], [Sums() for _ in gpus], []
    try:
        for r, gpu in enumerate(gpus):
            wdir = work / f"worker{r}"
            recipe_eval.copy_artifact(artifact, wdir)
            env = child_env(args.trial_env, wdir, gpu or "")
            env["AR_PHASE"] = "score"
            sessions.append(Session(_locked(args, wdir), env, wdir, work / f"worker{r}.log",
                                    min(deadline, time.monotonic() + START_S)))
        vocab, seq_len, info = ready_info(sessions[0])
        if vocab != len(tables.base):
            raise Invalid("malformed", f"the model's vocabulary is {vocab}, the tokenizer's {len(tables.base)}")
        total = (len(tokens) - 1) // seq_len * seq_len
        plan = plan_windows(total, seq_len, min(args.stride, seq_len))
        cuts = np.linspace(0, len(plan[0]), len(gpus) + 1).astype(int)
        cfg = Config(stride=args.stride, batch=args.batch, probes=args.probes, challenges=args.challenges)

        def work_on(r: int) -> None:
            try:
                sessions[r].deadline = deadline
                rng = np.random.default_rng([seed, r, int.from_bytes(os.urandom(4), "little")])
                scorer = RangeScorer(tokens[:total + 1], tables, plan, cfg, seq_len, vocab, rng)
                sums[r] = scorer.run(sessions[r], int(cuts[r]), int(cuts[r + 1]))
            except Invalid as e:
                errors.append(e)

        threads = [threading.Thread(target=work_on, args=(r,)) for r in range(len(gpus))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        total_sums = Sums()
        for s in sums:
            total_sums.add(s)
        out = total_sums.result()
        out.update(seq_len=seq_len, stride=cfg.stride, workers=len(gpus), seconds=round(time.monotonic() - t0, 3),
                   device=info.get("device"), compiled=info.get("compiled"))
        return out
    finally:
        for s in sessions:
            s.close()


def check_claim(harness: dict, claim: dict | None, max_gain: float) -> tuple[float, bool]:
    """(score, self_reported) for a seed, raising Invalid for a claim that fails a check."""
    if claim is None or claim["label"] in PLAIN_LABELS:
        return harness["val_bpb"], False
    ratio = claim["val_bpb"] / claim["val_loss"] if claim["val_loss"] else float("nan")
    want = harness["bpb_per_loss"]
    if not math.isfinite(ratio) or abs(ratio - want) > RATIO_TOL * want:
        raise Invalid("ratio", f"the recipe's {claim['label']} line has val_bpb/val_loss = {ratio:.7f}; this "
                               f"validation set gives {want:.7f} (tokens/(bytes*ln 2)): its byte count is wrong")
    gain = harness["val_bpb"] - claim["val_bpb"]
    if gain > max_gain:
        raise Invalid("gain", f"the recipe's {claim['label']} ({claim['val_bpb']:.5f}) beats the harness's own "
                              f"evaluation of the same artifact ({harness['val_bpb']:.5f}) by {gain:.4f} bpb, more "
                              f"than the {max_gain} a legal score-first adaptation is allowed here")
    return claim["val_bpb"], True


def score_seed(i: int, args, tokens: np.ndarray, tables: Tables) -> dict:
    artifact = Path(os.environ.get("AR_OUTPUTS", "/outputs")) / args.phase / str(i) / "artifact"
    work = Path.cwd() / f"seed{i}"
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"seed_index": i, "isolation": f"landlock-abi{abi()}" if abi() else "none"}
    try:
        if not (artifact / "train_gpt.py").is_file():
            raise Invalid("crash", f"the train phase wrote no artifact/train_gpt.py for seed {i}")
        out["harness"] = reevaluate(artifact, work, tokens, tables, args, i)
        claim = None
        if args.recipe_eval:
            run = recipe_eval.run(artifact, work / "recipe", args, i)
            out.update(eval_s=run["seconds"], eval_overrun=run["overrun"], recipe_eval_tail=run["tail"])
            if run["overrun"]:
                raise Invalid("eval_overrun", f"the recipe's eval ran {run['seconds']:.0f} s, over its "
                                              f"{args.eval_budget:g} s budget; killed")
            if run["rc"] != 0 or not run["claims"]:
                raise Invalid("recipe_eval", f"the recipe's eval run failed (rc {run['rc']}): {run['tail']}")
            claim = run["claims"][-1]
            out["reported"] = claim
            out["reported_all"] = run["claims"]
        score, self_reported = check_claim(out["harness"], claim, args.max_gain)
        out.update(valid=True, val_bpb=score, self_reported=self_reported)
    except Invalid as e:
        out.update(valid=False, invalid_kind=e.kind, reason=str(e)[:1000], val_bpb=None)
    return out


def combine(results: list[dict]) -> dict:
    if len(results) == 1:
        return results[0]
    bad = [r for r in results if not r["valid"]]
    out = dict(bad[0]) if bad else {"valid": True}
    if not bad:
        out["val_bpb"] = float(np.mean([r["val_bpb"] for r in results]))
        out["self_reported"] = any(r["self_reported"] for r in results)
        out["eval_s"] = max((r.get("eval_s", 0.0) for r in results), default=0.0)
        out["isolation"] = results[0]["isolation"]
    out["per_seed"] = results
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="parameter-golf scorer")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE of the trial phases' environment")
    p.add_argument("--phase", default="train")
    p.add_argument("--stride", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--probes", type=int, default=1 << 30, help="at most this many causality probes per worker")
    p.add_argument("--challenges", type=int, default=2)
    p.add_argument("--recipe-eval", type=int, default=1)
    p.add_argument("--eval-budget", type=float, default=600.0)
    p.add_argument("--reeval-budget", type=float, default=900.0)
    p.add_argument("--max-gain", type=float, default=0.03)
    args = p.parse_args(argv)
    data = os.environ.get("AR_DATA", "/data")
    pairs = (kv.split("=", 1) for kv in args.env)
    # Without a sandbox (--unisolated) /data is a host path: the trial's values follow it.
    args.trial_env = {k: data + v[5:] if v == "/data" or v.startswith("/data/") else v for k, v in pairs}
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    hidden = Path(os.environ.get("AR_HIDDEN", "/hidden"))
    tokens = load_tokens(hidden / "val")
    tables = Tables.load(hidden / "byte_tables.npz")
    seeds = int(os.environ.get("AR_SEEDS") or 1)
    result = combine([score_seed(i, args, tokens, tables) for i in range(seeds)])
    text = json.dumps(result, sort_keys=True)
    if os.environ.get("AR_RESULT"):
        Path(os.environ["AR_RESULT"]).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
