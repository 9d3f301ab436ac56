"""The recipe's own eval run, inside the scorer sandbox: timed and killed here, never trusted.

`run(artifact, work, args, seed)` copies the artifact, starts its code under torchrun on every
leased GPU (one process on a CPU) with AR_PHASE=eval and AR_VAL_FILES pointing at the hidden
validation shard, through landlock.py (it can read the shard, as TTT must, but cannot write
outside its own dir, so not /result), kills its whole process group at `args.eval_budget`
seconds of wall time, and parses every `<label> val_loss:X val_bpb:Y` line it printed.
Stdlib only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from reeval import child_env

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^(?P<label>[A-Za-z][\w\- ]*?) val_loss:(?P<loss>[-+0-9.eE]+) val_bpb:(?P<bpb>[-+0-9.eE]+)")
KEEP_LINES = 200


def copy_artifact(src: Path, dest: Path) -> None:
    """Regular files of the artifact dir (no links, no subdirs) into dest/artifact/."""
    target = dest / "artifact"
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        if entry.is_file() and not entry.is_symlink():
            shutil.copyfile(entry, target / entry.name)


def _argv(work: Path, nproc: int) -> list[str]:
    result_dir = str(Path(os.environ.get("AR_RESULT", "/result/x")).parent)
    lock = [sys.executable, str(HERE / "landlock.py"), "--deny", result_dir, "--tcp",
            "--rw", str(work), "--rw", os.environ.get("TMPDIR", "/tmp"), "--rw", "/dev", "--"]
    return lock + [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "artifact/train_gpt.py"]


def _pump(stream, tail: deque, claims: list[dict]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        tail.append(line)
        m = LINE.match(line)
        if m:
            try:
                claims.append({"label": m["label"].strip(), "val_loss": float(m["loss"]), "val_bpb": float(m["bpb"])})
            except ValueError:
                continue


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(artifact: Path, work: Path, args, seed: int) -> dict:
    """Run the recipe's eval; {"rc", "seconds", "overrun", "claims", "tail"}."""
    copy_artifact(artifact, work)
    ids = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    env = child_env(args.trial_env, work, ",".join(ids))
    hidden = os.environ.get("AR_HIDDEN", "/hidden")
    env.update(AR_PHASE="eval", AR_SEED=str(seed), AR_SMOKE="0", AR_DATA=os.environ.get("AR_DATA", "/data"),
               AR_VAL_FILES=f"{hidden}/val/fineweb_val_*.bin")
    tail: deque = deque(maxlen=KEEP_LINES)
    claims: list[dict] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(_argv(work, max(len(ids), 1)), cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    reader = threading.Thread(target=_pump, args=(proc.stdout, tail, claims), daemon=True)
    reader.start()
    overrun = False
    try:
        proc.wait(timeout=args.eval_budget)
    except subprocess.TimeoutExpired:
        overrun = True
    seconds = time.monotonic() - t0
    _kill(proc)  # stragglers of the group, and the run itself on overrun
    proc.wait()
    reader.join(timeout=5)
    lines = [ln for ln in tail if ln.strip()]
    return {"rc": proc.returncode, "seconds": round(seconds, 3), "overrun": overrun, "claims": list(claims),
            "tail": " | ".join(lines[-3:])[-600:]}
