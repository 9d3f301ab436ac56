"""tiny-golf scorer: validation bits per byte of an artifact, measured over a pipe.

Standalone (stdlib + numpy); it imports nothing from the project. The evaluator connects
this process's stdout to the artifact's stdin and the artifact's stdout to this stdin
(AR_INTERACTIVE=1). Hidden text: $AR_HIDDEN/val.bin. Result: one JSON object written to
$AR_RESULT and printed as the last line on stderr; stdout carries only protocol bytes.

Protocol (little-endian). Each request is a header <II (B, L) and B*L context bytes; the
artifact answers B*256 float32, one distribution over the next byte per context. B == 0 ends.

Feeding order. The held-out text is cut into `lanes` of CTX+SCORED bytes. In batch j
(j = 0..SCORED-1) lane k's target is position k*LANE + CTX + j and its context is the CTX
bytes right before it. So (1) within a batch, targets are LANE > CTX bytes apart and no
context window contains another target of the same batch; (2) every byte a context has ever
shown lies strictly before the current target of its lane, so no answer can depend on the
byte it predicts; (3) the next batch is sent only after all answers to this one are read.
Answers must be finite, >= 0 and sum to 1 within TOL; they are renormalised, p(target) is
floored at P_FLOOR, and val_bpb = mean(-log2 p(target)).

Failure kinds in the result: "eof" (the artifact exited or closed its output, or broke the
pipe), "timeout" (no answer within AR_EVAL_TIMEOUT_S), "malformed" (NaN/inf, negative, or not
normalised); the task's finalize maps "malformed" to `disqualified` and the others to `crash`.
"""

from __future__ import annotations

import json
import os
import select
import struct
import sys
import time
from pathlib import Path

import numpy as np

CTX = 128  # context bytes sent with each query
SCORED = 128  # targets per lane (= number of batches)
LANE = CTX + SCORED
MAX_LANES = 256  # 256 lanes x 128 targets = 32,768 scored bytes
TOL = 1e-3
P_FLOOR = 1e-12


class Invalid(Exception):
    """The artifact's answers cannot be scored; `kind` is eof, timeout or malformed."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def plan(n_bytes: int) -> tuple[int, list[np.ndarray]]:
    """Number of lanes and, for each batch, the target positions it scores."""
    lanes = min(MAX_LANES, n_bytes // LANE)
    starts = np.arange(lanes, dtype=np.int64) * LANE + CTX
    return lanes, [starts + j for j in range(SCORED)]


def read_exact(fd: int, n: int, deadline: float) -> bytes:
    """Read n bytes from fd before `deadline` (monotonic seconds)."""
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise Invalid("timeout", f"no answer within the deadline ({len(buf)} of {n} bytes)")
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise Invalid("eof", f"artifact closed its output after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def check(p: np.ndarray, batch: int) -> np.ndarray:
    """Validate a (B, 256) answer block; return it renormalised."""
    if not np.isfinite(p).all():
        raise Invalid("malformed", f"batch {batch}: non-finite probabilities")
    if (p < 0).any():
        raise Invalid("malformed", f"batch {batch}: negative probabilities")
    sums = p.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(np.abs(sums - 1.0) > TOL)
    if bad.size:
        raise Invalid("malformed", f"batch {batch}, row {bad[0]}: probabilities sum to {sums[bad[0]]:.6g}")
    return p / sums[:, None]


def send(fd: int, data: bytes, deadline: float) -> None:
    """Write all of data before `deadline`, in chunks a writable pipe takes without blocking."""
    view = memoryview(data)
    try:
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise Invalid("timeout", "artifact stopped reading its input")
            view = view[os.write(fd, view[: select.PIPE_BUF]) :]
    except (BrokenPipeError, ConnectionResetError) as e:
        raise Invalid("eof", f"artifact closed its input ({type(e).__name__})") from e


def evaluate(val: bytes, fd_in: int, fd_out: int, timeout_s: float) -> dict:
    """Run the whole exchange; return the result dict (raises Invalid)."""
    text = np.frombuffer(val, dtype=np.uint8)
    lanes, batches = plan(len(text))
    if lanes == 0:
        raise ValueError(f"val.bin holds {len(text)} bytes, fewer than one lane ({LANE})")
    deadline, bits, t0 = time.monotonic() + timeout_s, 0.0, time.monotonic()
    window = np.arange(-CTX, 0)
    for j, targets in enumerate(batches):
        contexts = text[targets[:, None] + window]
        send(fd_out, struct.pack("<II", lanes, CTX) + contexts.tobytes(), deadline)
        raw = read_exact(fd_in, lanes * 256 * 4, deadline)
        p = check(np.frombuffer(raw, dtype="<f4").reshape(lanes, 256).astype(np.float64), j)
        bits += float(-np.log2(np.maximum(p[np.arange(lanes), text[targets]], P_FLOOR)).sum())
    try:
        send(fd_out, struct.pack("<II", 0, CTX), deadline)
    except Invalid:
        pass  # every answer is in; an artifact that already left has done its job
    n = lanes * SCORED
    return {"valid": True, "val_bpb": bits / n, "tokens": n, "lanes": lanes, "batches": SCORED,
            "ctx": CTX, "scorer_s": round(time.monotonic() - t0, 3)}


def main() -> int:
    hidden = Path(os.environ.get("AR_HIDDEN", "/hidden"))
    timeout_s = float(os.environ.get("AR_EVAL_TIMEOUT_S", "600"))
    val = (hidden / "val.bin").read_bytes()
    try:
        result = evaluate(val, sys.stdin.fileno(), sys.stdout.fileno(), timeout_s)
    except Invalid as e:
        result = {"valid": False, "invalid_kind": e.kind, "reason": str(e), "val_bpb": None}
    try:
        sys.stdout.close()  # tell the artifact we are done, whatever happened
    except OSError:
        pass
    text = json.dumps(result, sort_keys=True)
    if os.environ.get("AR_RESULT"):
        Path(os.environ["AR_RESULT"]).write_text(text)
    print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
