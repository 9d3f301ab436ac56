"""A pool of GPU (or CPU) slots with first-come-first-served leases.

- GPU slots come from `CUDA_VISIBLE_DEVICES` (passed in by the entry point), else from
  `nvidia-smi -L`, else from the `/dev/nvidia<N>` nodes; with none, the pool has CPU slots.
  Tests and benches build pools with explicit (fake) device ids.
- `acquire(k)` blocks until k slots are free *and* every earlier request has been served:
  a k=8 request at the head is never starved by later k=1 requests (FIFO with reservation).
- A `Lease` names its slot indices (each slot has its own sandbox uid), its device ids (what
  the sandbox exports as `CUDA_VISIBLE_DEVICES` and binds as `/dev/nvidia<N>`) and its CPU
  threads. Release in `finally`, after the sandbox was verified dead.
- With a `lock_dir` (every pool `detect` builds: the real hardware) a slot is also leased
  host-wide, by an exclusive `flock` on `<lock_dir>/gpu-<id>.lock` (or `cpu-<i>.lock`) held
  for the lease, so pools in different processes (a search's workers, a `serve` process's
  evaluator jobs, a standalone `evaluate`) never run two things on one slot. A slot another
  process holds is skipped, and waiters re-check every 0.1 s; a killed holder's lock goes with
  it. Order is first come, first served within a process, not across processes.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


LOCK_DIR_ENV = "AR_SLOT_LOCK_DIR"  # read by `autoresearch worker` at its edge; see `set_default_lock_dir`
_lock_dir_override: list[Path | None] = [None]


def set_default_lock_dir(path: Path | None) -> None:
    """Make `default_lock_dir()` return `path` in this process (None: back to the default).

    For simulated hosts only: several `autoresearch worker` processes on one machine, each
    standing for a host with GPUs of its own, lease their slots in separate dirs
    (`$AR_SLOT_LOCK_DIR`). Two processes with different dirs can run two trials on one real GPU.
    """
    _lock_dir_override[0] = Path(path).resolve() if path else None


def default_lock_dir() -> Path:
    """/run/lock/autoresearch-slots when writable, else under the temp dir (or the dir
    `set_default_lock_dir` set)."""
    if _lock_dir_override[0] is not None:
        return _lock_dir_override[0]
    base = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path(tempfile.gettempdir())
    return base / "autoresearch-slots"


class _HostLocks:
    """Exclusive flocks on one file per slot, shared by every process on the host."""

    def __init__(self, lock_dir: Path, names: Sequence[str]) -> None:
        self.dir = Path(lock_dir)
        self.names = [re.sub(r"[^A-Za-z0-9_.-]", "_", n) + ".lock" for n in names]
        self._fds: dict[int, int] = {}

    def take(self, slot: int) -> bool:
        """Lock `slot` host-wide if no other process (or pool) holds it."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.dir / self.names[slot], os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SlotRequestError(f"cannot open the slot lock in {self.dir}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fds[slot] = fd
        return True

    def give(self, slot: int) -> None:
        fd = self._fds.pop(slot, None)
        if fd is not None:
            os.close(fd)  # releases the lock


class SlotPool:
    """Thread-safe FIFO pool of slots. GPU pool: one slot per device; CPU pool: `cpu_slots`.

    `lock_dir`: lease each slot host-wide too (see the module docstring); None keeps the pool
    private to this object (tests and benches with fake devices).
    """

    def __init__(self, devices: Sequence[str] | None = None, cpu_slots: int | None = None,
                 cpus: int | None = None, lock_dir: Path | None = None) -> None:
        self.devices = tuple(devices or ())
        cpus = cpus or os.cpu_count() or 1
        self.size = len(self.devices) or (cpu_slots or max(1, cpus // 2))
        self.threads_per_slot = max(1, cpus // self.size)
        self.lock_dir = lock_dir
        names = [f"gpu-{d}" for d in self.devices] or [f"cpu-{i}" for i in range(self.size)]
        self._host = _HostLocks(lock_dir, names) if lock_dir is not None else None
        self._free = list(range(self.size))
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()
        self.busy_s = 0.0  # total slot-seconds leased, for benches

    @classmethod
    def detect(cls, cuda_visible_devices: str | None = None, cpu_slots: int | None = None,
               lock_dir: Path | None = None) -> SlotPool:
        """A pool over the GPUs this host offers (see `detect_devices`), else CPU slots, leased
        host-wide under `lock_dir` (default: `default_lock_dir()`)."""
        return cls(detect_devices(cuda_visible_devices), cpu_slots=cpu_slots, lock_dir=lock_dir or default_lock_dir())

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
                while (slots := self._take(k, first=self._queue[0] == ticket)) is None:
                    if cancel is not None and cancel.is_set():
                        return None
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    if cancel is not None or self._host is not None:  # neither wakes the condition
                        left = 0.1 if left is None else min(left, 0.1)
                    self._cond.wait(left)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
        devices = tuple(self.devices[s] for s in slots) if self.devices else ()
        return Lease(slots=slots, devices=devices, threads=self.threads_per_slot * k)

    def _take(self, k: int, first: bool) -> tuple[int, ...] | None:
        """k free slots (held host-wide too, with a lock dir), or None; the caller holds the condition."""
        if not first or len(self._free) < k:
            return None
        taken: list[int] = []
        for s in sorted(self._free):
            if len(taken) == k:
                break
            if self._host is None or self._host.take(s):
                taken.append(s)
        if len(taken) < k:
            for s in taken:
                if self._host is not None:
                    self._host.give(s)
            return None
        self._free = [s for s in self._free if s not in taken]
        return tuple(taken)

    def release(self, lease: Lease) -> None:
        """Return a lease's slots to the pool (and the host) and wake the waiters."""
        with self._cond:
            self.busy_s += (time.monotonic() - lease.granted_at) * len(lease.slots)
            for s in lease.slots:
                if self._host is not None:
                    self._host.give(s)
            self._free.extend(s for s in lease.slots if s not in self._free)
            self._cond.notify_all()
