"""Trial uids, one per slot, unique on the host across evaluator processes.

Each slot's uid is claimed with an exclusive `flock` on `<lock dir>/<uid>.lock`, held until
the sandbox closes, so two evaluators on one host (a search and a standalone `evaluate`, say)
never share a uid. That is what makes per-uid checks safe: `RLIMIT_NPROC` counts only this
slot's processes, and sweeping the uid after a trial kills nothing of anyone else. A uid that
still has live processes (left by a crashed evaluator, or used by something else) is skipped.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path

from evaluator_service._proc import pids_of_uid
from evaluator_service.exceptions import SandboxError

SPAN = 4096


def default_lock_dir() -> Path:
    """/run/lock/autoresearch-uids when writable, else under the temp dir."""
    base = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path(tempfile.gettempdir())
    return base / "autoresearch-uids"


class UidLocks:
    """slot -> uid, claimed lazily from `base` upwards."""

    def __init__(self, base: int, lock_dir: Path | None = None) -> None:
        self.base = base
        self.lock_dir = lock_dir or default_lock_dir()
        self._uids: dict[int, int] = {}
        self._fds: list[int] = []
        self._lock = threading.Lock()

    def get(self, slot: int) -> int:
        """The uid of `slot`, claimed on first use."""
        with self._lock:
            if slot not in self._uids:
                self._uids[slot] = self._claim()
            return self._uids[slot]

    def _claim(self) -> int:
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        taken = set(self._uids.values())
        for uid in range(self.base, self.base + SPAN):
            if uid in taken:
                continue
            fd = os.open(self.lock_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if pids_of_uid(uid):
                os.close(fd)
                continue
            self._fds.append(fd)
            return uid
        raise SandboxError(f"no free trial uid in {self.base}..{self.base + SPAN - 1}")

    def close(self) -> None:
        """Release every claimed uid."""
        with self._lock:
            for fd in self._fds:
                os.close(fd)
            self._fds.clear()
            self._uids.clear()
