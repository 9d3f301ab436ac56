"""Process plumbing for the sandbox: bounded output capture, cgroups, leftover scans.

- `OutputCapture` drains a pipe in a thread, keeps a bounded head and tail, counts every
  byte, and calls `on_flood` once when the total passes the cap.
- `Cgroup` is one cgroup-v2 directory per sandbox run: race-free placement (the launcher,
  `_launch.py`, writes its own pid to `cgroup.procs` before exec'ing bubblewrap), `cgroup.kill`, the
  `populated` flag, and CPU time from `cpu.stat` (which counts detached descendants too).
- `pids_in_pidns` / `pids_in_session` / `pids_of_uid` find what survived a sandbox.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HEAD_BYTES = 8 << 10
TAIL_BYTES = 32 << 10


class OutputCapture(threading.Thread):
    """Drain `fd` until EOF; keep `HEAD_BYTES` of head and `TAIL_BYTES` of tail."""

    def __init__(self, fd: int, cap: int, on_flood: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="sandbox-output")
        self.fd, self.cap, self.on_flood = fd, cap, on_flood
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_len = 0
        self.total = 0
        self.flooded = False

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 1 << 16):
                self._add(chunk)
        except OSError:
            pass

    def _add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < HEAD_BYTES:
            take = HEAD_BYTES - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        if chunk:
            self.tail.append(chunk)
            self.tail_len += len(chunk)
            while self.tail_len - len(self.tail[0]) >= TAIL_BYTES:
                self.tail_len -= len(self.tail.popleft())
        if self.total > self.cap and not self.flooded:
            self.flooded = True
            self.on_flood()

    def finish(self, timeout: float = 2.0) -> None:
        """Join the reader; close our end even if a stray writer keeps the pipe open."""
        self.join(timeout)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.join(0.5)

    def text(self) -> str:
        """Head, a marker for what was dropped, and tail, decoded leniently."""
        tail = b"".join(self.tail)[-TAIL_BYTES:]
        dropped = self.total - len(self.head) - len(tail)
        mid = f"\n[... {dropped} bytes dropped ...]\n".encode() if dropped > 0 else b""
        return (bytes(self.head) + mid + tail).decode("utf-8", errors="replace")


def find_cgroup_root(candidates: tuple[str, ...] = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")) -> Path | None:
    """A writable cgroup-v2 directory with `cgroup.kill` support, or None."""
    for cand in candidates:
        base = Path(cand)
        if not (base / "cgroup.procs").exists() or not (base / "cgroup.controllers").exists():
            continue
        parent = base / "autoresearch-evaluator"
        probe = parent / f"probe-{uuid.uuid4().hex[:8]}"
        try:
            parent.mkdir(exist_ok=True)
            probe.mkdir()
            ok = (probe / "cgroup.kill").exists()
            probe.rmdir()
        except OSError:
            continue
        if ok:
            _remove_stale(parent)
            return parent
    return None


def _remove_stale(parent: Path, age_s: float = 3600.0) -> None:
    """Remove run cgroups an evaluator that crashed left behind (empty, older than an hour)."""
    now = time.time()
    for child in parent.glob("run-*"):
        try:
            if now - child.stat().st_mtime > age_s:
                child.rmdir()  # fails while anything still runs in it
        except OSError:
            continue


class Cgroup:
    """One cgroup-v2 directory for one sandbox run."""

    def __init__(self, parent: Path) -> None:
        self.path = parent / f"run-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def kill(self) -> None:
        """Kill every process in the cgroup (and its descendants) at once."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass

    def populated(self) -> bool:
        """Whether any process is still in the cgroup."""
        try:
            return "populated 1" in (self.path / "cgroup.events").read_text()
        except OSError:
            return False

    def cpu_s(self) -> float | None:
        """CPU seconds the cgroup used, detached descendants included."""
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except OSError:
            pass
        return None

    def drain(self, timeout: float = 2.0) -> int:
        """Kill until empty; return how many processes were still in it."""
        left = len(self.pids())
        deadline = time.monotonic() + timeout
        while self.populated() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.005)
        return left

    def pids(self) -> list[int]:
        """The pids in the cgroup now."""
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Remove the (empty) cgroup directory."""
        try:
            self.path.rmdir()
        except OSError:
            pass


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int) -> bool:
    """False for zombies (dead, waiting to be reaped by whoever inherited them)."""
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def pids_in_pidns(inode: int) -> list[int]:
    """Host pids of every live process whose PID namespace has inode `inode`."""
    want = f"pid:[{inode}]"
    out = []
    for pid in _all_pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == want and _alive(pid):
                out.append(pid)
        except OSError:
            continue
    return out


def _stat_fields(pid: int) -> list[str]:
    return _comm_and_fields(pid)[1]  # fields after `comm`, starting at `state`


def pidns_cpu_s(inode: int) -> float:
    """CPU seconds used so far by the processes of a PID namespace, reaped ones included.

    Each live or zombie process counts its own time plus what it has reaped (cutime/cstime),
    so a process that exited counts once, in whoever waited for it. Only for budgets: the
    scored figure comes from the sandbox's reaper (`_reaper.py`) once the command exits.
    """
    want, ticks, total = f"pid:[{inode}]", os.sysconf("SC_CLK_TCK"), 0
    for pid in _all_pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == want:
                fields = _stat_fields(pid)
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def pids_in_session(sid: int) -> list[int]:
    """Live processes whose session id is `sid`."""
    out = []
    for pid in _all_pids():
        try:
            fields = _stat_fields(pid)
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                out.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out


def pids_of_uid(uid: int) -> list[int]:
    """Live processes owned by `uid`."""
    out = []
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid and _alive(pid):
                out.append(pid)
        except OSError:
            continue
    return out


def kill_all(pids: list[int]) -> int:
    """SIGKILL each pid; return how many were signalled."""
    n = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except OSError:
            continue
    return n


def stuck_sandbox_setups(memfd: str, min_age_s: float = 60.0) -> list[int]:
    """bwrap processes left stuck in a sandbox's setup: a bwrap that still holds the sandbox's
    seccomp program (memfd `memfd`, applied just before the command runs, so nothing of a trial
    ran yet), whose parent is no bwrap (the bwrap that started it died: it was re-parented), and
    that is older than `min_age_s` (no setup takes that long).

    bubblewrap's child waits on its parent during setup and sets its parent-death signal only
    partway through, so a parent killed at the wrong moment (the evaluator's process killed with
    SIGKILL while a sandbox starts) leaves that child blocked forever (bubblewrap issue #633).
    """
    want, hz = f"/memfd:{memfd}", os.sysconf("SC_CLK_TCK")
    now_ticks = float(Path("/proc/uptime").read_text().split()[0]) * hz
    out = []
    for pid in _all_pids():
        try:
            comm, fields = _comm_and_fields(pid)  # one read of /proc/PID/stat for name, state, parent, start
            if comm != "bwrap" or fields[0] in ("Z", "X") or now_ticks - int(fields[19]) < min_age_s * hz:
                continue
            if _comm_and_fields(int(fields[1]))[0] == "bwrap":
                continue  # its bwrap parent lives: a sandbox starting or running
            if any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(want) for fd in os.listdir(f"/proc/{pid}/fd")):
                out.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out


def _comm_and_fields(pid: int) -> tuple[str, list[str]]:
    """The process's name and the /proc/PID/stat fields after it (state first)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None
