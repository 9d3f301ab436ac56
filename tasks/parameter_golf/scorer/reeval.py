"""The harness's own loss of an artifact: sliding windows over the validation tokens.

This side holds the validation tokens and the byte tables; the agent's model runs in a
worker process (worker.py, started under landlock.py) that sees neither. Per batch the
scorer sends windows and every target, the worker answers one negative log-likelihood per
scored target, and the scorer then asks for the raw logits at a few positions it picks only
after the answer arrived:

- consistency: at each challenged position, -log_softmax(logits)[target] computed here must
  equal the worker's number; a worker that misstates its losses, or whose "distribution" is
  not normalised, is caught (`inconsistent`);
- causality probes: a few batches carry a twin of one window whose tokens after a random cut
  come from elsewhere in the set; scores before the cut, and the whole distribution just
  before it, must not change. A model that looks at the token it predicts is caught
  (`acausal`).

Windows follow upstream's sliding evaluation (seq_len T, stride S: every target scored once,
with T - S tokens of context except in the first window); stride T is the plain,
non-overlapping evaluation. Bytes per target: base bytes of the target piece, plus one for a
leading space unless the previous token is a boundary. Stdlib + numpy only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frames import WireError, expect, pack_windows, write_frame

CLAIM_TOL_ABS, CLAIM_TOL_REL = 2e-3, 1e-4
PROBE_TOL = 0.02
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
    batch: int = 32
    probes: int = 4
    challenges: int = 2
    seed: int = 0


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


def log_softmax(rows: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=1, keepdims=True))


@dataclass
class Batch:
    """One batch of windows as sent: slots, scored ranges, and where its twin (if any) is."""

    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    end: np.ndarray
    real: np.ndarray  # slot -> index into this range's windows, -1 for padding and twins
    twin: tuple[int, int, int] | None = None  # (original slot, twin slot, cut)
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def finish(self) -> Batch:
        self.offsets = np.concatenate([[0], np.cumsum(self.end - self.start)])
        return self

    def flat(self, slot: int, pos: int) -> int:
        return int(self.offsets[slot] + pos - self.start[slot])


class RangeScorer:
    """Scores windows [lo, hi) of the plan through one session."""

    def __init__(self, tokens: np.ndarray, tables: Tables, plan: tuple, cfg: Config, seq_len: int,
                 vocab: int, rng: np.random.Generator) -> None:
        self.tokens, self.tables, self.cfg, self.t, self.vocab, self.rng = tokens, tables, cfg, seq_len, vocab, rng
        self.ws, self.first, self.wlen = plan

    def build(self, idx: np.ndarray, probe: bool) -> Batch:
        b, t = self.cfg.batch, self.t
        x, y = np.zeros((b, t), np.int64), np.zeros((b, t), np.int64)
        start, end, real = np.zeros(b, np.int64), np.zeros(b, np.int64), np.full(b, -1, np.int64)
        slots = self.rng.permutation(b)
        for slot, w in zip(slots, idx):
            n = int(self.wlen[w])
            x[slot, :n] = self.tokens[self.ws[w]:self.ws[w] + n]
            y[slot, :n] = self.tokens[self.ws[w] + 1:self.ws[w] + n + 1]
            start[slot], end[slot], real[slot] = self.first[w], n, w
        batch = Batch(x, y, start, end, real)
        if probe:
            self._add_twin(batch, slots[len(idx)])
        return batch.finish()

    def _add_twin(self, batch: Batch, slot: int) -> None:
        cands = [s for s in np.flatnonzero(batch.real >= 0) if batch.end[s] - batch.start[s] >= 2]
        if not cands:
            return
        orig = int(self.rng.choice(cands))
        cut = int(self.rng.integers(batch.start[orig] + 1, batch.end[orig]))
        n = int(batch.end[orig])
        src = int(self.rng.integers(0, len(self.tokens) - (n - cut) - 1))
        batch.x[slot], batch.y[slot] = batch.x[orig], batch.y[orig]
        batch.x[slot, cut:n] = self.tokens[src:src + n - cut]
        batch.y[slot, cut - 1:n] = self.tokens[src:src + n - cut + 1]
        batch.start[slot], batch.end[slot] = batch.start[orig], n
        batch.twin = (orig, slot, cut)

    def run(self, session: Session, lo: int, hi: int) -> Sums:
        sums = Sums()
        per = self.cfg.batch
        starts = list(range(lo, hi, per - 1 if self.cfg.probes else per))
        probe_at = set(self.rng.choice(len(starts), size=min(self.cfg.probes, len(starts)), replace=False).tolist()) \
            if self.cfg.probes and per > 1 else set()
        for k, a in enumerate(starts):
            take = (per - 1) if self.cfg.probes else per
            idx = np.arange(a, min(a + take, hi))
            batch = self.build(idx, probe=k in probe_at)
            self._score(session, batch, sums)
        return sums

    def _score(self, session: Session, batch: Batch, sums: Sums) -> None:
        claims = session.nll(pack_windows(batch.start, batch.end, batch.x, batch.y), int(batch.offsets[-1]))
        real = np.flatnonzero(batch.real >= 0)
        pairs = self._challenges(batch, real)
        rows = session.rows(np.array(pairs, np.int64).reshape(-1, 2), self.vocab)
        logp = log_softmax(rows)
        for (slot, pos), lp in zip(pairs, logp):
            self._check_claim(batch, claims, slot, pos, lp)
        if batch.twin is not None:
            self._check_twin(batch, claims, pairs, logp)
            sums.probes += 1
        for slot in real:
            s, e = int(batch.start[slot]), int(batch.end[slot])
            sums.loss += float(claims[batch.flat(slot, s):batch.flat(slot, s) + e - s].sum())
            sums.tokens += e - s
            sums.bytes += int(self.tables.target_bytes(batch.x[slot, s:e], batch.y[slot, s:e]).sum())
        sums.windows += len(real)
        sums.challenges += len(pairs)

    def _challenges(self, batch: Batch, real: np.ndarray) -> list[tuple[int, int]]:
        pairs = []
        for _ in range(self.cfg.challenges):
            slot = int(self.rng.choice(real))
            pairs.append((slot, int(self.rng.integers(batch.start[slot], batch.end[slot]))))
        if batch.twin is not None:
            orig, twin, cut = batch.twin
            pairs += [(orig, cut - 1), (twin, cut - 1)]
        return pairs

    def _check_claim(self, batch: Batch, claims: np.ndarray, slot: int, pos: int, logp: np.ndarray) -> None:
        mine = -float(logp[batch.y[slot, pos]])
        theirs = float(claims[batch.flat(slot, pos)])
        if abs(mine - theirs) > CLAIM_TOL_ABS + CLAIM_TOL_REL * abs(mine):
            raise Invalid("inconsistent", f"at a checked position the logits give a loss of {mine:.6f}, the worker "
                                          f"reported {theirs:.6f}: the reported losses are not the model's")

    def _check_twin(self, batch: Batch, claims: np.ndarray, pairs: list, logp: np.ndarray) -> None:
        orig, twin, cut = batch.twin
        s = int(batch.start[orig])
        a = claims[batch.flat(orig, s):batch.flat(orig, cut - 1)]
        b = claims[batch.flat(twin, s):batch.flat(twin, cut - 1)]
        tv = 0.5 * float(np.abs(np.exp(logp[-2]) - np.exp(logp[-1])).sum())
        if (a.size and float(np.abs(a - b).max()) > PROBE_TOL) or tv > PROBE_TOL:
            raise Invalid("acausal", f"changing the tokens after position {cut - 1} of a window changed the "
                                     f"model's prediction at or before it (total variation {tv:.4f}): the model "
                                     "looks at tokens it has not been shown yet")


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
