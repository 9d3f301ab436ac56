"""The wire format between the scorer (harness) and its model worker (the agent's model).

A frame is a 4-byte tag, a little-endian uint64 payload length, and the payload. Tags:

    RDY  worker -> scorer  JSON {"vocab", "seq_len", "device", "compiled"}
    WIN  scorer -> worker  <III B, T, n>, int32 start[B], int32 end[B], int32 x[B*T], int32 y[B*T]
    NLL  worker -> scorer  float32[n]: -log p(y[b,t]) for every b and start[b] <= t < end[b], in order
    CHK  scorer -> worker  int32[k, 2] (window, position) pairs
    ROW  worker -> scorer  float32[k, V]: the logits at those positions, as the model produced them
    END  scorer -> worker  (empty) the worker exits 0

The worker answers WIN with NLL and CHK with ROW, from the same batch. Stdlib + numpy only.
"""

from __future__ import annotations

import os
import select
import struct
import time

import numpy as np

HEAD = struct.Struct("<4sQ")
MAX_PAYLOAD = 1 << 34


class WireError(Exception):
    """The other side broke the protocol, closed the pipe, or did not answer in time."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind  # "eof", "timeout" or "malformed"


def write_frame(fd: int, tag: bytes, payload: bytes = b"") -> None:
    """Write one whole frame to a blocking fd."""
    data = memoryview(HEAD.pack(tag, len(payload)) + payload)
    try:
        while data:
            data = data[os.write(fd, data):]
    except (BrokenPipeError, ConnectionResetError) as e:
        raise WireError("eof", f"the other side closed its input ({type(e).__name__})") from e


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WireError("timeout", f"no answer in time ({got} of {n} bytes)")
        chunk = os.read(fd, min(n - got, 1 << 22))
        if not chunk:
            raise WireError("eof", f"the other side closed its output after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> tuple[bytes, bytes]:
    """(tag, payload) of the next frame; `deadline` in time.monotonic() seconds, None: wait."""
    tag, size = HEAD.unpack(_read_exact(fd, HEAD.size, deadline))
    if size > MAX_PAYLOAD:
        raise WireError("malformed", f"frame {tag!r} announces {size} bytes")
    return tag, _read_exact(fd, size, deadline)


def expect(fd: int, want: bytes, deadline: float | None) -> bytes:
    tag, payload = read_frame(fd, deadline)
    if tag != want:
        raise WireError("malformed", f"expected a {want.decode()} frame, got {tag!r}")
    return payload


def pack_windows(start: np.ndarray, end: np.ndarray, x: np.ndarray, y: np.ndarray) -> bytes:
    b, t = x.shape
    n = int((end - start).sum())
    return (struct.pack("<III", b, t, n) + start.astype("<i4").tobytes() + end.astype("<i4").tobytes()
            + x.astype("<i4").tobytes() + y.astype("<i4").tobytes())


def unpack_windows(payload: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b, t, _n = struct.unpack_from("<III", payload)
    arr = np.frombuffer(payload, dtype="<i4", offset=12)
    start, end = arr[:b], arr[b:2 * b]
    x = arr[2 * b:2 * b + b * t].reshape(b, t)
    y = arr[2 * b + b * t:2 * b + 2 * b * t].reshape(b, t)
    return start, end, x, y
