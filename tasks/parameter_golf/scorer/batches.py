"""Scoring a range of windows through one worker, and the checks on its answers.

Per batch the scorer sends windows with every target; the worker answers one negative
log-likelihood per scored target; then the scorer asks for the raw logits at positions it
draws only after that answer:

- consistency (`inconsistent`): at each challenged position, -log_softmax(logits)[target]
  computed here must equal the worker's number, so the reported losses belong to normalised
  distributions the worker will stand by;
- causality probes (`acausal`): in each batch one scored window is picked as a probe source
  (its answers and its logits just before a random cut are kept), and a later batch carries its
  twin, whose tokens from the cut on come from elsewhere in the set. Losses before the cut and
  the distribution just before it must not change. The twin comes after the original has been
  answered, so a worker cannot tell at answer time which windows will be compared: a model that
  reads tokens it has not been shown yet (the targets are in the window) is caught wherever it
  does so at a probed position, and every batch probes one.

Stdlib + numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frames import pack_windows
from reeval import Config, Invalid, Session, Sums, Tables

CLAIM_TOL_ABS, CLAIM_TOL_REL = 2e-3, 1e-4
PROBE_TOL = 0.02


def log_softmax(rows: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=1, keepdims=True))


@dataclass
class Probe:
    """A window answered earlier, its cut, and what the worker said before the cut."""

    x: np.ndarray
    y: np.ndarray
    start: int
    end: int
    cut: int
    claims: np.ndarray  # losses at positions start .. cut-2 (the targets the twin shares)
    logp: np.ndarray  # log-probabilities at position cut-1


@dataclass
class Batch:
    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    end: np.ndarray
    real: np.ndarray  # slot -> window index, -1 for padding and the twin
    twin_slot: int = -1

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.end - self.start)])

    def flat(self, slot: int, pos: int) -> int:
        return int(self.offsets[slot] + pos - self.start[slot])

    def span(self, slot: int, lo: int, hi: int) -> slice:
        return slice(self.flat(slot, lo), self.flat(slot, hi))


class RangeScorer:
    """Scores windows [lo, hi) of the plan through one session."""

    def __init__(self, tokens: np.ndarray, tables: Tables, plan: tuple, cfg: Config, seq_len: int,
                 vocab: int, rng: np.random.Generator) -> None:
        self.tokens, self.tables, self.cfg, self.t, self.vocab, self.rng = tokens, tables, cfg, seq_len, vocab, rng
        self.ws, self.first, self.wlen = plan
        self.sums = Sums()

    def run(self, session: Session, lo: int, hi: int) -> Sums:
        take = max(self.cfg.batch - 1, 1)
        pending: Probe | None = None
        for a in range(lo, hi, take):
            batch = self._build(np.arange(a, min(a + take, hi)), pending)
            pending = self._score(session, batch, pending, last=a + take >= hi)
        return self.sums

    def _build(self, idx: np.ndarray, pending: Probe | None) -> Batch:
        b, t = self.cfg.batch, self.t
        x, y = np.zeros((b, t), np.int64), np.zeros((b, t), np.int64)
        start, end, real = np.zeros(b, np.int64), np.zeros(b, np.int64), np.full(b, -1, np.int64)
        slots = self.rng.permutation(b)
        for slot, w in zip(slots, idx):
            n = int(self.wlen[w])
            x[slot, :n] = self.tokens[self.ws[w]:self.ws[w] + n]
            y[slot, :n] = self.tokens[self.ws[w] + 1:self.ws[w] + n + 1]
            start[slot], end[slot], real[slot] = self.first[w], n, w
        twin = -1
        if pending is not None and len(idx) < b:
            twin = int(slots[len(idx)])
            x[twin], y[twin] = self._twin_tokens(pending)
            start[twin], end[twin] = pending.start, pending.end
        return Batch(x, y, start, end, real, twin)

    def _twin_tokens(self, p: Probe) -> tuple[np.ndarray, np.ndarray]:
        """The probe's window with its tokens from the cut on taken from elsewhere in the set."""
        x, y, n, cut = p.x.copy(), p.y.copy(), p.end, p.cut
        src = int(self.rng.integers(0, len(self.tokens) - (n - cut) - 1))
        x[cut:n] = self.tokens[src:src + n - cut]
        y[cut - 1:n] = self.tokens[src:src + n - cut + 1]
        return x, y

    def _score(self, session: Session, batch: Batch, pending: Probe | None, last: bool) -> Probe | None:
        claims = session.nll(pack_windows(batch.start, batch.end, batch.x, batch.y), int(batch.offsets[-1]))
        real = np.flatnonzero(batch.real >= 0)
        pairs = [(int(s), int(self.rng.integers(batch.start[s], batch.end[s])))
                 for s in self.rng.choice(real, size=self.cfg.challenges)]
        source = self._pick_source(batch, real) if not last and self.sums.probes < self.cfg.probes else None
        if source is not None:
            pairs.append((source[0], source[1] - 1))
        if batch.twin_slot >= 0:
            pairs.append((batch.twin_slot, pending.cut - 1))
        logp = log_softmax(session.rows(np.array(pairs, np.int64).reshape(-1, 2), self.vocab))
        for (slot, pos), lp in zip(pairs, logp):
            self._check_claim(batch, claims, slot, pos, lp)
        if batch.twin_slot >= 0:
            self._check_twin(batch, claims, pending, logp[-1])
            self.sums.probes += 1
        self._add(batch, claims, real)
        self.sums.challenges += len(pairs)
        return None if source is None else self._probe(batch, claims, source, logp[self.cfg.challenges])

    def _pick_source(self, batch: Batch, real: np.ndarray) -> tuple[int, int] | None:
        ok = [int(s) for s in real if batch.end[s] - batch.start[s] >= 2]
        if not ok:
            return None
        slot = int(self.rng.choice(ok))
        return slot, int(self.rng.integers(batch.start[slot] + 1, batch.end[slot]))

    def _probe(self, batch: Batch, claims: np.ndarray, source: tuple[int, int], logp: np.ndarray) -> Probe:
        slot, cut = source
        s, e = int(batch.start[slot]), int(batch.end[slot])
        return Probe(batch.x[slot].copy(), batch.y[slot].copy(), s, e, cut,
                     claims[batch.span(slot, s, cut - 1)].copy(), logp)

    def _add(self, batch: Batch, claims: np.ndarray, real: np.ndarray) -> None:
        pos = np.arange(self.t)[None, :]
        mask = (pos >= batch.start[:, None]) & (pos < batch.end[:, None])
        mask[batch.real < 0] = False
        keep = np.repeat(batch.real >= 0, batch.end - batch.start)
        self.sums.loss += float(claims[keep].sum())
        self.sums.tokens += int(mask.sum())
        self.sums.bytes += int(self.tables.target_bytes(batch.x[mask], batch.y[mask]).sum())
        self.sums.windows += len(real)

    def _check_claim(self, batch: Batch, claims: np.ndarray, slot: int, pos: int, logp: np.ndarray) -> None:
        mine = -float(logp[batch.y[slot, pos]])
        theirs = float(claims[batch.flat(slot, pos)])
        if abs(mine - theirs) > CLAIM_TOL_ABS + CLAIM_TOL_REL * abs(mine):
            raise Invalid("inconsistent", f"at a checked position the logits give a loss of {mine:.6f}, the worker "
                                          f"reported {theirs:.6f}: the reported losses are not the model's")

    def _check_twin(self, batch: Batch, claims: np.ndarray, p: Probe, logp: np.ndarray) -> None:
        twin = claims[batch.span(batch.twin_slot, p.start, p.cut - 1)]
        worst = float(np.abs(twin - p.claims).max()) if twin.size else 0.0
        tv = 0.5 * float(np.abs(np.exp(logp) - np.exp(p.logp)).sum())
        if worst > PROBE_TOL or tv > PROBE_TOL:
            raise Invalid("acausal", f"changing the tokens after position {p.cut - 1} of a window changed the "
                                     f"model's predictions at or before it (loss by {worst:.4f}, distribution by "
                                     f"total variation {tv:.4f}): the model reads tokens it has not been shown")
