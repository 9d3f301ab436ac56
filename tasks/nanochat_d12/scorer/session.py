"""The scorer's side of a model worker: frames, batches, and the checks on every answer.

Frames on the pipes: 4-byte tag, 8-byte little-endian length, payload.

    scorer -> worker   WIN  int32 [B, T, tokens (B*T, padded with the row's last token... BOS),
                            spans (B*2: lo, hi)]
    worker -> scorer   ANS  float32 losses of every scored position (rows in order), then
                            int32 greedy tokens of the same positions
    scorer -> worker   CHK  int32 pairs (row, position)
    worker -> scorer   LOG  float32 logits at those positions (pairs x vocab)
    scorer -> worker   END
    worker -> scorer   RDY  JSON {vocab, limit, n_layer, sequence_len, device} (once, first)

Checks, per batch (an `Invalid` names what failed):

- consistency: after the answers the scorer asks for the raw logits at a few scored positions
  it draws only then, and recomputes their loss and greedy token (`inconsistent` if the
  worker's own numbers are not those of a normalised distribution it stands by);
- causality: one row of every batch is kept with its answers and a cut drawn at random; a later
  batch carries its twin, whose tokens from the cut on are replaced. The losses before the cut
  and the whole distribution just before it must not move (`acausal`): a model that reads a
  token it is asked to predict is caught where a probe lands. The twin comes after the
  original was answered, so a worker cannot tell at answer time which rows are compared.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NLL_TOL = 2e-3  # reported vs recomputed from the same logits (float32 both)
PROBE_NLL_TOL = 0.05  # the same position in two batches (bf16 kernels may differ with the batch)
PROBE_TV_TOL = 0.05  # total variation between the two distributions before the cut


class Invalid(Exception):
    """The worker's answers fail a check (or it failed); `kind` is the scorer's failure kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def write_frame(f, tag: bytes, payload: bytes) -> None:
    f.write(tag + struct.pack("<Q", len(payload)) + payload)
    f.flush()


def read_frame(f) -> tuple[bytes, bytes]:
    head = f.read(12)
    if len(head) < 12:
        raise Invalid("crash", "the model worker closed its output (see its log)")
    (n,) = struct.unpack("<Q", head[4:])
    payload = f.read(n)
    if len(payload) < n:
        raise Invalid("crash", "the model worker stopped mid-answer (see its log)")
    return head[:4], payload


@dataclass
class Probe:
    tokens: np.ndarray
    lo: int
    cut: int
    nll: np.ndarray  # losses at positions lo .. cut-2
    logits: np.ndarray | None = None  # the distribution at position cut-1


@dataclass
class Session:
    """One worker process and its pending causality probe."""

    proc: subprocess.Popen
    log: Path
    rng: np.random.Generator
    ready: dict = field(default_factory=dict)
    probe: Probe | None = None
    probes: int = 0
    challenges: int = 0

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], cwd: Path, log: Path, seed: int,
              start_s: float = 900.0) -> Session:
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        s = cls(proc=proc, log=log, rng=np.random.default_rng([seed, int.from_bytes(os.urandom(4), "little")]))
        t0 = time.monotonic()
        try:
            tag, payload = read_frame(proc.stdout)
        except Invalid as e:
            s.close()
            raise Invalid("crash", f"the model worker did not start: {s.tail()}") from e
        if tag != b"RDY ":
            raise Invalid("crash", f"the model worker said {tag!r} instead of RDY")
        s.ready = json.loads(payload)
        s.ready["load_s"] = round(time.monotonic() - t0, 3)
        return s

    def close(self) -> None:
        try:
            write_frame(self.proc.stdin, b"END ", b"")
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.is_file() else ""

    # ---------------------------------------------------------------- one batch

    def _send(self, rows: list[np.ndarray], spans: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        width = max(len(r) for r in rows)
        grid = np.zeros((len(rows), width), dtype="<i4")
        for i, r in enumerate(rows):
            grid[i, :len(r)] = r
            grid[i, len(r):] = r[0]  # pad with the row's BOS: only positions after the row's end see it
        head = np.array([len(rows), width], dtype="<i4")
        write_frame(self.proc.stdin, b"WIN ", head.tobytes() + grid.tobytes() + np.array(spans, "<i4").tobytes())
        tag, payload = read_frame(self.proc.stdout)
        sizes = [hi - lo for lo, hi in spans]
        total = sum(sizes)
        if tag != b"ANS " or len(payload) != 8 * total:
            raise Invalid("malformed", f"the worker answered {tag!r} with {len(payload)} bytes, expected {8 * total}")
        nll = np.frombuffer(payload[:4 * total], "<f4").astype(np.float64)
        top = np.frombuffer(payload[4 * total:], "<i4").astype(np.int64)
        cuts = np.cumsum([0, *sizes])
        return [nll[a:b] for a, b in zip(cuts, cuts[1:])], [top[a:b] for a, b in zip(cuts, cuts[1:])]

    def _logits(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        write_frame(self.proc.stdin, b"CHK ", np.array(pairs, "<i4").tobytes())
        tag, payload = read_frame(self.proc.stdout)
        vocab = int(self.ready["vocab"])
        if tag != b"LOG " or len(payload) != 4 * vocab * len(pairs):
            raise Invalid("malformed", f"the worker answered {tag!r} with {len(payload)} bytes of logits")
        return np.frombuffer(payload, "<f4").astype(np.float64).reshape(len(pairs), vocab)

    def ask(self, rows: list[np.ndarray], spans: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Losses and greedy tokens on the spans of `rows`, checked (see the module docstring)."""
        n = len(rows)
        twin = self._twin()
        all_rows, all_spans = list(rows), list(spans)
        if twin is not None:
            all_rows.append(twin[0])
            all_spans.append(twin[1])
        nll, top = self._send(all_rows, all_spans)
        pairs, twin_at, keep = self._plan_checks(all_rows, all_spans, n, twin is not None)
        logits = self._logits(pairs)
        self._check_consistent(all_rows, all_spans, nll, top, pairs, logits)
        if twin_at is not None:
            self._check_twin(nll[n], logits[twin_at])
        if keep is not None:
            r, cut, at = keep
            lo = all_spans[r][0]
            self.probe = Probe(tokens=all_rows[r], lo=lo, cut=cut, nll=nll[r][:cut - 1 - lo], logits=logits[at])
        return nll[:n], top[:n]

    def _plan_checks(self, rows, spans, n, has_twin):
        """Positions whose logits are asked for: two random scored ones, the twin's and a new
        probe's. Returns (pairs, index of the twin's pair, (row, cut, index) of the new probe)."""
        pairs = []
        for _ in range(2):
            r = int(self.rng.integers(n))
            lo, hi = spans[r]
            if hi > lo:
                pairs.append((r, int(self.rng.integers(lo, hi))))
        twin_at = None
        if has_twin:
            twin_at = len(pairs)
            pairs.append((n, self.probe.cut - 1))
        usable = [r for r in range(n) if spans[r][1] - spans[r][0] >= 2]
        if not usable or (self.probe is not None and not has_twin):
            return pairs, twin_at, None
        r = usable[int(self.rng.integers(len(usable)))]
        lo, hi = spans[r]
        cut = int(self.rng.integers(lo + 1, hi + 1))  # tokens cut.. change in the twin; cut-1 is scored
        pairs.append((r, cut - 1))
        return pairs, twin_at, (r, cut, len(pairs) - 1)

    def _twin(self) -> tuple[np.ndarray, tuple[int, int]] | None:
        p = self.probe
        if p is None:
            return None
        tokens = p.tokens.copy()
        vocab = int(self.ready["vocab"])
        tokens[p.cut:] = (tokens[p.cut:] + 1 + self.rng.integers(0, vocab - 1, len(tokens) - p.cut)) % vocab
        return tokens, (p.lo, p.cut - 1)

    def _check_consistent(self, rows, spans, nll, top, pairs, logits) -> None:
        for (r, pos), row in zip(pairs, logits):
            lo, hi = spans[r]
            if not lo <= pos < hi:
                continue
            z = row - row.max()
            want = float(np.log(np.exp(z).sum()) - z[rows[r][pos + 1]])
            got = float(nll[r][pos - lo])
            if not np.isfinite(got) or abs(got - want) > NLL_TOL * (1 + abs(want)):
                raise Invalid("inconsistent", f"the worker reported a loss of {got:.5f} where its own logits give "
                                              f"{want:.5f}: the losses must come from the model's distribution")
            if int(top[r][pos - lo]) != int(np.argmax(row)):
                raise Invalid("inconsistent", "the worker's greedy token is not the argmax of its own logits")
            self.challenges += 1

    def _check_twin(self, nll: np.ndarray, logits: np.ndarray) -> None:
        p = self.probe
        self.probe, self.probes = None, self.probes + 1
        if len(nll) and np.max(np.abs(nll - p.nll) / (1 + np.abs(p.nll))) > PROBE_NLL_TOL:
            raise Invalid("acausal", "the model's losses before a position moved when only later tokens changed: "
                                     "its predictions must use earlier tokens only")
        a, b = _softmax(p.logits), _softmax(logits)
        if 0.5 * float(np.abs(a - b).sum()) > PROBE_TV_TOL:
            raise Invalid("acausal", "the model's distribution for the next token moved when only that token and "
                                     "later ones changed: it reads the tokens it is asked to predict")


def _softmax(row: np.ndarray) -> np.ndarray:
    z = np.exp(row - row.max())
    return z / z.sum()
