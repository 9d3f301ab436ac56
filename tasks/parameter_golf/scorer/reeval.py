"""The harness's own loss of an artifact: windows, byte tables, sums, and the worker session.

This side holds the validation tokens and the byte tables; the agent's model runs in a worker
process (worker.py, started under landlock.py) that sees neither. `batches.RangeScorer` drives
a `Session` through the windows (and checks the answers, see there); this module has what it
scores with:

- `plan_windows`: upstream's sliding evaluation (seq_len T, stride S: every target scored once,
  with T - S tokens of context except in the first window); stride T is the plain,
  non-overlapping evaluation;
- `Tables`: bytes per target = base bytes of the target piece, plus one for a leading space
  unless the previous token is a boundary;
- `Sums`: loss, tokens and bytes, and the result (val_loss, val_bpb, tokens/(bytes*ln 2));
- `Session`: one worker process and its frames (frames.py), with a deadline on every answer.

Stdlib + numpy only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frames import WireError, expect, write_frame

SEQ_LEN_RANGE = (16, 16384)


class Invalid(Exception):
    """The artifact cannot be scored; `kind` says why (see the scorer's result kinds)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Tables:
    """The harness's byte tables, one entry per token id."""

    base: np.ndarray
    space: np.ndarray
    boundary: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Tables:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["base_bytes"].astype(np.int64), z["leading_space"].astype(bool), z["boundary"].astype(bool))

    def target_bytes(self, prev: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self.base[target] + (self.space[target] & ~self.boundary[prev])


@dataclass
class Config:
    stride: int = 64
    batch: int = 32  # windows per batch: batch - 1 scored ones and one slot for a probe's twin
    probes: int = 1 << 30  # at most this many probes per worker (one per batch)
    challenges: int = 2  # positions per batch whose raw logits are checked


@dataclass
class Sums:
    loss: float = 0.0
    tokens: int = 0
    bytes: int = 0
    windows: int = 0
    probes: int = 0
    challenges: int = 0

    def add(self, other: Sums) -> None:
        for name in ("loss", "tokens", "bytes", "windows", "probes", "challenges"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def result(self) -> dict:
        if self.tokens == 0 or self.bytes == 0:
            raise Invalid("malformed", "nothing was scored")
        loss = self.loss / self.tokens
        ratio = self.tokens / (self.bytes * math.log(2.0))
        return {"val_loss": loss, "val_bpb": loss * ratio, "bpb_per_loss": ratio, "tokens": self.tokens,
                "bytes": self.bytes, "windows": self.windows, "probes": self.probes, "challenges": self.challenges}


def plan_windows(total: int, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window starts, first scored offset, window length) covering targets 0..total-1 once."""
    if not 0 < stride <= seq_len:
        raise ValueError(f"stride {stride} must be in 1..{seq_len}")
    context = seq_len - stride
    ws = np.arange(0, total, stride, dtype=np.int64)
    ws = ws[ws + context < total]
    wlen = np.minimum(ws + seq_len, total) - ws
    first = np.where(ws == 0, 0, context)
    return ws, first, wlen


class Session:
    """One worker process and its frames."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, deadline: float) -> None:
        self.deadline, self.log = deadline, log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        self.out, self.inp = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.ready = self._call(None, b"RDY ")

    def _call(self, frame: tuple[bytes, bytes] | None, want: bytes) -> bytes:
        try:
            if frame is not None:
                write_frame(self.out, *frame)
            return expect(self.inp, want, self.deadline)
        except WireError as e:
            raise self._failure(e) from None

    def _failure(self, e: WireError) -> Invalid:
        if e.kind == "eof":
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            return Invalid("crash", f"the model worker stopped ({e}): {self.tail()}")
        return Invalid("timeout" if e.kind == "timeout" else "malformed", f"model worker: {e}")

    def tail(self, n: int = 600) -> str:
        try:
            text = self.log.read_bytes()[-8000:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return " | ".join(lines[-4:])[-n:]

    def nll(self, payload: bytes, n: int) -> np.ndarray:
        claims = np.frombuffer(self._call((b"WIN ", payload), b"NLL "), dtype="<f4").astype(np.float64)
        if claims.size != n:
            raise Invalid("malformed", f"the worker answered {claims.size} losses for {n} targets")
        if not np.isfinite(claims).all() or (claims < -1e-4).any():
            raise Invalid("malformed", "the worker answered a non-finite or negative loss")
        return claims

    def rows(self, pairs: np.ndarray, vocab: int) -> np.ndarray:
        raw = self._call((b"CHK ", pairs.astype("<i4").tobytes()), b"ROW ")
        rows = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        if rows.size != len(pairs) * vocab:
            raise Invalid("malformed", f"the worker answered {rows.size} logits for {len(pairs)} rows of {vocab}")
        rows = rows.reshape(len(pairs), vocab)
        if not np.isfinite(rows).all():
            raise Invalid("malformed", "the worker answered non-finite logits")
        return rows

    def close(self) -> None:
        try:
            write_frame(self.out, b"END ")
            self.proc.wait(timeout=10)
        except (WireError, subprocess.TimeoutExpired, OSError):
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()


def child_env(trial_env: dict[str, str], home: Path, gpus: str) -> dict[str, str]:
    """The sandbox's environment without the scorer's AR_* variables, the trial's, and the child's own
    home and compile caches (the trial's /trial paths do not exist here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AR_")}
    env.update(trial_env)
    env.update(HOME=str(home), CUDA_VISIBLE_DEVICES=gpus, TORCHINDUCTOR_CACHE_DIR=str(home / ".cache" / "inductor"),
               TRITON_CACHE_DIR=str(home / ".cache" / "triton"))
    return env


def ready_info(session: Session) -> tuple[int, int, dict]:
    info = json.loads(session.ready.decode())
    vocab, seq_len = int(info["vocab"]), int(info["seq_len"])
    if not SEQ_LEN_RANGE[0] <= seq_len <= SEQ_LEN_RANGE[1]:
        raise Invalid("malformed", f"eval_seq_len {seq_len} is outside {SEQ_LEN_RANGE}")
    return vocab, seq_len, info


def timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0
