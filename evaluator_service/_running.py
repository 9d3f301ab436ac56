"""A started sandbox run: wait for it against a deadline, kill it whole, verify it is gone.

`Running` is created by `Sandbox.start`. The wall clock starts just before the spawn and
stops when the outer process is reaped. Kill order (evaluator-facts.md §1.4): SIGKILL the
PID-namespace init through a pidfd (no pid-reuse race), `cgroup.kill`, reap, then kill and
count whatever is still in the namespace or the cgroup.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from evaluator_service._files import disk_usage
from evaluator_service._proc import (
    Cgroup,
    OutputCapture,
    kill_all,
    pidns_cpu_s,
    pids_in_pidns,
    pids_in_session,
)


@dataclass(frozen=True)
class RunSpec:
    """One command to run. Paths in `ro`/`rw` map inside path -> host path."""

    argv: tuple[str, ...]
    scratch: Path
    budget_s: float
    cwd: str = "/trial"
    ro: Mapping[str, Path] = field(default_factory=dict)
    rw: Mapping[str, Path] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    output_cap: int = 1 << 20
    scratch_cap: int | None = None
    memory_bytes: int | None = None
    max_procs: int | None = None
    gpus: tuple[str, ...] = ()
    threads: int = 1
    masks: tuple[Path, ...] = ()
    slot: int = 0
    clock: str = "wall"  # which clock `budget_s` is on: "wall", or "cpu" (CPU of the whole tree)
    wall_cap_s: float | None = None  # with a CPU budget: the wall-clock backstop (None: 4x budget)

    @property
    def wall_deadline_s(self) -> float:
        """Seconds after the start at which the run is killed whatever its CPU use."""
        if self.clock == "cpu":
            return self.wall_cap_s if self.wall_cap_s is not None else 4 * self.budget_s
        return self.budget_s


class PhaseRun(BaseModel):
    """What the runner observed of one sandboxed command."""

    model_config = ConfigDict(frozen=True)

    rc: int | None
    wall_s: float
    timed_out: bool = False
    killed: str = Field("", description="'' or why the runner killed it: budget, output_cap, scratch_cap, cancelled")
    output: str = Field("", description="bounded head + tail of stdout/stderr")
    output_bytes: int = 0
    survivors_killed: int = Field(0, description="processes still alive after exit, then killed")
    cpu_s: float | None = Field(None, description="CPU seconds of the whole tree, detached descendants included")
    peak_rss_mib: float | None = Field(None, description="largest resident memory of one of its processes")
    unisolated: bool = False

    @property
    def ok(self) -> bool:
        """Exited 0 on its own."""
        return self.rc == 0 and not self.killed


INFO_TIMEOUT_S = 30.0  # bwrap reports its namespace init within milliseconds


class Running:
    """A sandbox in flight. Thread-safe `kill(reason)`; one thread calls `wait()`."""

    def __init__(self, spec: RunSpec, argv: list[str], *, env: dict[str, str], cwd: str,
                 info_pipe: tuple[int, int] | None, cgroup: Cgroup | None, stdin: int | None,
                 stdout: int | None, unisolated: bool, disk_check_s: float,
                 pass_fds: tuple[int, ...] = (), on_finish: Callable[[], None] | None = None,
                 report_fd: int | None = None) -> None:
        self.spec, self.cgroup, self.unisolated = spec, cgroup, unisolated
        self.on_finish, self.report_fd = on_finish, report_fd
        self.cpu_seen: float | None = None
        self.disk_check_s = disk_check_s
        self.killed = ""
        self._lock = threading.Lock()
        self._child_pidfd: int | None = None
        self.info: dict[str, int] = {}
        out_r, out_w = os.pipe()
        pass_fds = (*pass_fds, *((info_pipe[1],) if info_pipe else ()))
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=out_w if stdout is None else stdout, stderr=out_w, env=env, cwd=cwd,
                pass_fds=pass_fds, start_new_session=True, close_fds=True,
            )
        except BaseException:
            for fd in (out_r, info_pipe[0] if info_pipe else None, report_fd):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            os.close(out_w)
            if info_pipe:
                os.close(info_pipe[1])
        self.capture = OutputCapture(out_r, spec.output_cap, lambda: self.kill("output_cap"))
        self.capture.start()
        if info_pipe:
            self._read_info(info_pipe[0])
        self._pidfd = os.pidfd_open(self.proc.pid)

    def _read_info(self, fd: int) -> None:
        """bwrap writes the namespace init's host pid and namespace inodes, then closes."""
        data = b""
        deadline = time.monotonic() + INFO_TIMEOUT_S
        try:
            while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        try:
            self.info = {k: int(v) for k, v in json.loads(data.decode() or "{}").items()}
        except (ValueError, AttributeError):
            self.info = {}
        child = self.info.get("child-pid")
        if child:
            try:
                self._child_pidfd = os.pidfd_open(child)
            except OSError:
                self._child_pidfd = None

    def kill(self, reason: str) -> None:
        """Kill the whole sandbox; the first reason given is the one reported."""
        with self._lock:
            if not self.killed:
                self.killed = reason
            if self._child_pidfd is not None:
                try:
                    signal.pidfd_send_signal(self._child_pidfd, signal.SIGKILL)
                except OSError:
                    pass
            if self.cgroup:
                self.cgroup.kill()
            if self.unisolated or self._child_pidfd is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _exited(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._pidfd], [], [], max(0.0, timeout))
        return bool(ready)

    def over_cpu_budget(self) -> bool:
        """Whether the tree has used more CPU seconds than the spec's budget (CPU clock only)."""
        return self.spec.clock == "cpu" and (self._cpu_now() or 0.0) > self.spec.budget_s

    def wait(self, cancel: threading.Event | None = None, deadline: float | None = None,
             overrun: str = "budget", watch: Callable[[], str] | None = None) -> PhaseRun:
        """Wait until exit, `deadline` or the CPU budget, then verify and report.

        `deadline` defaults to the start plus the spec's wall deadline (the budget, or the
        backstop of a CPU budget). A CPU budget is checked every `disk_check_s`, and so is
        `watch`, which may return a reason to kill this run (another run's budget, say).
        """
        deadline = self.t0 + self.spec.wall_deadline_s if deadline is None else deadline
        next_disk = time.monotonic() + self.disk_check_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.kill(overrun)
                break
            if self._exited(min(deadline, next_disk) - now):
                break
            if cancel is not None and cancel.is_set():
                self.kill("cancelled")
                break
            if time.monotonic() >= next_disk:
                next_disk = time.monotonic() + self.disk_check_s
                reason = overrun if self.over_cpu_budget() else (watch() if watch else "")
                if reason:
                    self.kill(reason)
                    break
                cap = self.spec.scratch_cap
                if cap and disk_usage(self.spec.scratch) > cap:
                    self.kill("scratch_cap")
                    break
        return self._finish()

    def _finish(self) -> PhaseRun:
        rc = self.proc.wait()
        wall = time.monotonic() - self.t0
        self._reap_init()
        self.capture.finish()
        survivors = self._sweep()
        report = self._report()
        cpu = report.get("cpu_s")
        if cpu is None:
            cpu = self.cgroup.cpu_s() if self.cgroup else self.cpu_seen
        if self.cgroup:
            self.cgroup.remove()
        for fd in (self._pidfd, self._child_pidfd):
            if fd is not None:
                os.close(fd)
        if self.on_finish:
            self.on_finish()
        return PhaseRun(
            rc=rc, wall_s=wall, timed_out=self.killed == "budget", killed=self.killed,
            output=self.capture.text(), output_bytes=self.capture.total,
            survivors_killed=survivors, cpu_s=cpu, unisolated=self.unisolated,
            peak_rss_mib=report["maxrss_kb"] / 1024 if "maxrss_kb" in report else None,
        )

    def _cpu_now(self) -> float | None:
        """CPU seconds of the sandbox's tree so far (cgroup, else its PID namespace)."""
        inode = self.info.get("pid-namespace")
        cpu = self.cgroup.cpu_s() if self.cgroup else (pidns_cpu_s(inode) if inode else None)
        if cpu is not None:
            self.cpu_seen = cpu
        return cpu

    def _report(self) -> dict[str, float]:
        """What the sandbox's reaper reported ({} when it was killed before reporting)."""
        if self.report_fd is None:
            return {}
        data = b""
        try:
            while select.select([self.report_fd], [], [], 0.2)[0]:
                chunk = os.read(self.report_fd, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(self.report_fd)
            self.report_fd = None
        try:
            raw = json.loads(data.decode())
        except ValueError:
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: float(v) for k, v in raw.items() if k in ("cpu_s", "maxrss_kb") and isinstance(v, (int, float))}

    def _reap_init(self) -> None:
        """Let the namespace init finish tearing the namespace down; force it if it lingers.

        The kernel kills every process of a PID namespace when its init dies, and the init
        exits only once they are all gone, so after this anything found is a real survivor.
        """
        fd = self._child_pidfd
        if fd is None:
            return
        if not select.select([fd], [], [], 0.5)[0]:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            select.select([fd], [], [], 2.0)

    def _sweep(self) -> int:
        """Kill and count what outlived the sandbox (namespace, cgroup or session)."""
        found: set[int] = set()
        inode = self.info.get("pid-namespace")
        if inode:
            found.update(pids_in_pidns(inode))
        elif self.unisolated:
            found.update(pids_in_session(self.proc.pid))
        kill_all(sorted(found))
        if self.cgroup:
            found.update(p for p in self.cgroup.pids() if p != self.proc.pid)
            self.cgroup.drain()
        return len(found)
