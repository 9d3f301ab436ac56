"""A pool of GPU (or CPU) slots with first-come-first-served leases.

- GPU slots come from `CUDA_VISIBLE_DEVICES` (passed in by the entry point), else from
  `nvidia-smi -L`, else from the `/dev/nvidia<N>` nodes; with none, the pool has CPU slots.
  Tests and benches build pools with explicit (fake) device ids.
- `acquire(k)` blocks until k slots are free *and* every earlier request has been served:
  a k=8 request at the head is never starved by later k=1 requests (FIFO with reservation).
- A `Lease` names its slot indices (each slot has its own sandbox uid), its device ids (what
  the sandbox exports as `CUDA_VISIBLE_DEVICES` and binds as `/dev/nvidia<N>`) and its CPU
  threads. Release in `finally`, after the sandbox was verified dead.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from evaluator_service.exceptions import SlotRequestError


@dataclass(frozen=True)
class Lease:
    """Slots granted to one trial."""

    slots: tuple[int, ...]
    devices: tuple[str, ...] = ()
    threads: int = 1
    granted_at: float = field(default_factory=time.monotonic)

    @property
    def slot(self) -> int:
        """The slot whose uid the trial's sandboxes run as."""
        return self.slots[0]


def detect_devices(cuda_visible_devices: str | None = None) -> list[str]:
    """GPU ids this host offers: the given CUDA_VISIBLE_DEVICES value, else what is present."""
    if cuda_visible_devices is not None:
        return [d.strip() for d in cuda_visible_devices.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
            ids = re.findall(r"^GPU (\d+):", out, re.MULTILINE)
            if ids:
                return ids
        except (OSError, subprocess.SubprocessError):
            pass
    nodes = [n for n in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", n)] if os.path.isdir("/dev") else []
    return sorted((n[len("nvidia"):] for n in nodes), key=int)


class SlotPool:
    """Thread-safe FIFO pool of slots. GPU pool: one slot per device; CPU pool: `cpu_slots`."""

    def __init__(self, devices: Sequence[str] | None = None, cpu_slots: int | None = None,
                 cpus: int | None = None) -> None:
        self.devices = tuple(devices or ())
        cpus = cpus or os.cpu_count() or 1
        self.size = len(self.devices) or (cpu_slots or max(1, cpus // 2))
        self.threads_per_slot = max(1, cpus // self.size)
        self._free = list(range(self.size))
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()
        self.busy_s = 0.0  # total slot-seconds leased, for benches

    @classmethod
    def detect(cls, cuda_visible_devices: str | None = None, cpu_slots: int | None = None) -> SlotPool:
        """A pool over the GPUs this host offers (see `detect_devices`), else CPU slots."""
        return cls(detect_devices(cuda_visible_devices), cpu_slots=cpu_slots)

    @property
    def kind(self) -> str:
        """'gpu' or 'cpu'."""
        return "gpu" if self.devices else "cpu"

    def free(self) -> int:
        """How many slots are free now."""
        with self._cond:
            return len(self._free)

    def waiting(self) -> int:
        """How many requests are waiting in line."""
        with self._cond:
            return len(self._queue)

    def acquire(self, k: int = 1, timeout: float | None = None,
                cancel: threading.Event | None = None) -> Lease | None:
        """Block until `k` slots are free and this request is first in line.

        Returns None on timeout or when `cancel` is set. Raises `SlotRequestError` when the
        pool can never satisfy `k`.
        """
        if k < 1 or k > self.size:
            raise SlotRequestError(f"asked for {k} slots; this pool has {self.size} ({self.kind})")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            try:
                while self._queue[0] != ticket or len(self._free) < k:
                    if cancel is not None and cancel.is_set():
                        return None
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    if cancel is not None:
                        left = 0.1 if left is None else min(left, 0.1)
                    self._cond.wait(left)
                slots = tuple(sorted(self._free)[:k])
                self._free = [s for s in self._free if s not in slots]
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
        devices = tuple(self.devices[s] for s in slots) if self.devices else ()
        return Lease(slots=slots, devices=devices, threads=self.threads_per_slot * k)

    def release(self, lease: Lease) -> None:
        """Return a lease's slots to the pool and wake the waiters."""
        with self._cond:
            self.busy_s += (time.monotonic() - lease.granted_at) * len(lease.slots)
            self._free.extend(s for s in lease.slots if s not in self._free)
            self._cond.notify_all()
