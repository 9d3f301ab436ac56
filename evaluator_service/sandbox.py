"""Run one command in a bubblewrap sandbox, timed and killed from outside.

`Sandbox(config).run(RunSpec(...)) -> PhaseRun`. What a run guarantees:

- the wall time is measured here (`time.monotonic` around spawn -> exit), never by the trial;
- on budget overrun, output flood, scratch overflow or cancel, the PID-namespace init (its
  host pid comes from `--info-fd`) is SIGKILLed through a pidfd, then the run's cgroup is
  killed when a cgroup-v2 is writable; after the exit every process left in the sandbox's
  PID namespace (or cgroup) is killed and counted in `PhaseRun.survivors_killed`;
- output (stdout+stderr) is drained continuously; only a bounded head and tail are kept;
- the environment is a short allow-list plus what the caller passes (no caller variables).

Without bubblewrap or user namespaces `probe()` raises `IsolationUnavailableError` unless the
config says `unisolated=True`; then commands run as plain subprocesses in their own session
(and cgroup, when one is writable), inside-paths in argv and env are rewritten to host
paths, and every `PhaseRun` says `unisolated=True`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import threading
import weakref
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evaluator_service import _bwrap, _launch, _reaper, _seccomp
from evaluator_service._proc import Cgroup, find_cgroup_root, kill_all, pids_of_uid, stuck_sandbox_setups
from evaluator_service._running import PhaseRun, Running, RunSpec
from evaluator_service._uids import UidLocks
from evaluator_service.exceptions import IsolationUnavailableError, SandboxError

__all__ = ["NOBODY", "PhaseRun", "RunSpec", "Sandbox", "SandboxConfig"]

log = logging.getLogger(__name__)

NOBODY = 65534


@functools.cache
def _reaper_source() -> str:
    """The reaper's text: it runs with `-c`, since the project's packages are masked inside."""
    return Path(_reaper.__file__).read_text()


class SandboxConfig(BaseModel):
    """How sandboxes are built on this host."""

    model_config = ConfigDict(frozen=True)

    workdir: Path = Field(description="private evaluator work dir (scratch, generated /etc files)")
    python: str = Field(sys.executable, description="interpreter that `{python}` stands for")
    python_roots: tuple[Path, ...] = Field(
        (Path(sys.prefix), Path(sys.base_prefix)),
        description="interpreter prefix and venv, bound read-only at their host paths",
    )
    bwrap: str = Field("bwrap", description="bubblewrap executable (name or path)")
    setpriv: str = "setpriv"
    prlimit: str = "prlimit"
    unisolated: bool = Field(False, description="explicit opt-out: run without any sandbox")
    uid_base: int | None = Field(60000, description="first trial uid (one per slot, locked host-wide); None: nobody")
    uid_lock_dir: Path | None = Field(None, description="where uid locks live (default /run/lock or the temp dir)")
    use_cgroup: bool = Field(True, description="use a cgroup-v2 per run when one is writable")
    shm_bytes: int = Field(1 << 30, description="size of the sandbox's /dev/shm")
    tmp_bytes: int = Field(256 << 20, description="size of the sandbox's private /tmp")
    nofile: int = Field(65536, description="RLIMIT_NOFILE (clamped to the evaluator's own hard limit)")
    disk_check_s: float = Field(0.25, description="how often the scratch size is checked")
    extra_ro: dict[str, Path] = Field(default_factory=dict, description="inside path -> host path")
    masks: tuple[Path, ...] = Field((), description="host paths always masked when reachable")

    @field_validator("workdir", "uid_lock_dir")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """bubblewrap takes bind sources literally: a relative work dir would not be found."""
        return None if path is None else path.resolve()


class Sandbox:
    """Builds and runs sandboxes; one instance is shared by all slots of an evaluator."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._probed: bool = False
        self._lock = threading.Lock()
        self._uids = UidLocks(config.uid_base or NOBODY, config.uid_lock_dir)
        weakref.finalize(self, self._uids.close)
        config.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.workdir, 0o711)
        if not config.unisolated:
            self.sweep_stuck_setups()

    def sweep_stuck_setups(self, min_age_s: float = 60.0) -> int:
        """Kill the bwrap processes an evaluator killed mid-setup left blocked on this host
        (`_proc.stuck_sandbox_setups`; no trial code ran in them); how many were killed."""
        killed = kill_all(stuck_sandbox_setups(_seccomp.MEMFD_NAME, min_age_s))
        if killed:
            log.warning("killed %d sandbox(es) left stuck in setup by an evaluator that was killed", killed)
        return killed

    # ------------------------------------------------------------------ capabilities
    @property
    def unisolated(self) -> bool:
        """True when the user opted out of the sandbox."""
        return self.config.unisolated

    @cached_property
    def privileged(self) -> bool:
        """Running as root: bwrap as root, uid dropped inside with setpriv."""
        return os.geteuid() == 0

    @cached_property
    def cgroup_parent(self) -> Path | None:
        """Where per-run cgroups go, or None when no cgroup-v2 is writable."""
        return find_cgroup_root() if self.config.use_cgroup and self.privileged else None

    def probe(self) -> None:
        """Check once that bubblewrap and namespaces work; raise if not (unless opted out)."""
        with self._lock:
            if self._probed or self.unisolated:
                return
            self._check_isolation()
            _seccomp.program()  # raises IsolationUnavailableError when libseccomp is missing
            self._probed = True

    def _check_isolation(self) -> None:
        missing = [t for t in (self.config.bwrap, self.config.setpriv, self.config.prlimit)
                   if shutil.which(t) is None]
        if self.privileged is False:
            missing = [t for t in missing if t != self.config.setpriv]
        if missing:
            raise IsolationUnavailableError(
                f"sandboxing unavailable: {', '.join(missing)} not found. Install bubblewrap and "
                "util-linux (apt-get install bubblewrap), or pass --unisolated to run trials "
                "without isolation (every outcome is then marked unisolated)."
            )
        argv = [self.config.bwrap, "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                "--proc", "/proc", "--dev", "/dev"]
        argv += [] if self.privileged else ["--unshare-user"]
        r = subprocess.run([*argv, "--", "true"], capture_output=True, text=True, timeout=30, check=False)
        if r.returncode != 0:
            raise IsolationUnavailableError(
                f"bubblewrap cannot create namespaces here: {r.stderr.strip()[:300]}. Enable "
                "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                "user.max_user_namespaces>0; on Ubuntu 24.04 set "
                "kernel.apparmor_restrict_unprivileged_userns=0), run outside a locked-down "
                "container, or pass --unisolated to opt out of isolation."
            )

    # ------------------------------------------------------------------ identities
    def uid_for(self, slot: int) -> tuple[int, int]:
        """The unprivileged uid/gid a slot's trials run as (its own, locked host-wide)."""
        if not self.privileged:
            return os.getuid(), os.getgid()
        if self.config.uid_base is None:
            return NOBODY, NOBODY
        uid = self._uids.get(slot)
        return uid, uid

    def close(self) -> None:
        """Give the trial uids back to other evaluators on this host."""
        self._uids.close()

    def dedicated_uid(self) -> bool:
        """Whether each slot has a uid of its own (so per-uid limits and sweeps are safe)."""
        return self.privileged and self.config.uid_base is not None and not self.unisolated

    def sweep(self, slots: tuple[int, ...]) -> int:
        """Kill anything still running as these slots' dedicated uids and clear their keys.

        Returns how many processes were killed.
        """
        if not self.dedicated_uid():
            return 0
        killed = sum(kill_all(pids_of_uid(self.uid_for(s)[0])) for s in slots)
        for slot in slots:
            try:
                self.clear_keys(slot)
            except (SandboxError, OSError, subprocess.SubprocessError):  # a sweep runs in `finally`: say it, go on
                log.exception("could not clear the kernel keys of slot %s", slot)
        return killed

    def clear_keys(self, slot: int) -> None:
        """Empty the kernel keyrings of the slot's dedicated uid (they outlive its processes)."""
        if not self.dedicated_uid():
            return
        uid, gid = self.uid_for(slot)
        argv = [*self._launcher(), "--clear-keys", str(uid), str(gid)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                           env={"PATH": "/usr/bin:/bin"}, cwd="/")
        if r.returncode != 0:
            raise SandboxError(f"could not clear the keys of uid {uid}: {r.stderr.strip()[-300:]}")

    def _launcher(self) -> list[str]:
        return [self.config.python, "-I", "-S", _launch.__file__]

    def prepare_dir(self, path: Path, slot: int) -> Path:
        """Hand a host dir to the slot's uid (no-op when unprivileged or unisolated)."""
        if self.privileged and not self.unisolated:
            from evaluator_service._files import chown_tree

            chown_tree(path, *self.uid_for(slot))
        return path

    # ------------------------------------------------------------------ running
    def start(self, spec: RunSpec, *, stdin: int | None = None, stdout: int | None = None) -> Running:
        """Start `spec`; the caller must `wait()` the returned handle."""
        self.probe()
        cgroup = Cgroup(self.cgroup_parent) if self.cgroup_parent else None
        report_r, report_w = os.pipe()
        fds: list[int] = [report_w]
        try:
            if self.unisolated:
                argv, env, cwd, info = self._plain(spec, report_w)
            else:
                argv, env, cwd, info = self._sandboxed(spec, fds)
            argv = [*self._launcher(), cgroup.procs_file if cgroup else "-", "--", *argv]
            return Running(spec, argv, env=env, cwd=cwd, info_pipe=info, cgroup=cgroup,
                           stdin=stdin, stdout=stdout, unisolated=self.unisolated,
                           disk_check_s=self.config.disk_check_s, pass_fds=tuple(fds),
                           on_finish=lambda: self.clear_keys(spec.slot), report_fd=report_r)
        except BaseException:
            if cgroup:
                cgroup.remove()
            raise
        finally:
            for fd in fds:
                os.close(fd)

    def run(self, spec: RunSpec, cancel: threading.Event | None = None) -> PhaseRun:
        """Run `spec` to completion (or to its budget) and report what happened."""
        return self.start(spec).wait(cancel=cancel)

    def _env(self, spec: RunSpec, home: str, path_dirs: list[str]) -> dict[str, str]:
        threads = str(max(1, spec.threads))
        env = {
            "PATH": ":".join([*path_dirs, "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": home, "USER": "trial", "LOGNAME": "trial", "LANG": "C.UTF-8",
            "TMPDIR": "/tmp", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            # idle OpenMP workers sleep instead of spinning: a spinning worker burns CPU on a free
            # core, which a CPU-clock score would count as work (it read 6-15 % higher idle than
            # beside a hog, which took the spare core away)
            "OMP_WAIT_POLICY": "PASSIVE",
            "AR_THREADS": threads, "TORCHINDUCTOR_COMPILE_THREADS": threads,  # compile workers: the slot's share
            "CUDA_VISIBLE_DEVICES": ",".join(spec.gpus),
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }
        if spec.gpus:
            env["NCCL_SOCKET_IFNAME"] = "lo"
        env.update(spec.env)
        return env

    def _rlimits(self, spec: RunSpec) -> dict[str, int]:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = self.config.nofile if hard == resource.RLIM_INFINITY else min(self.config.nofile, hard)
        limits = {"nofile": nofile, "core": 0}
        if spec.scratch_cap:
            limits["fsize"] = spec.scratch_cap
        if spec.memory_bytes and not spec.gpus:
            limits["as"] = spec.memory_bytes
        if spec.max_procs and self.dedicated_uid():
            limits["nproc"] = spec.max_procs
        return limits

    def _inner(self, spec: RunSpec, argv: list[str], report_fd: int) -> list[str]:
        """reaper -> [setpriv ->] prlimit -> argv: what runs inside the sandbox."""
        inner = _bwrap.prlimit_argv(self.config.prlimit, self._rlimits(spec)) + argv
        if self.privileged and not self.unisolated:
            inner = _bwrap.setpriv_argv(self.config.setpriv, *self.uid_for(spec.slot)) + inner
        reaper = [self.config.python, "-I", "-S", "-c", _reaper_source(), str(report_fd)]
        return [*reaper, *([] if self.unisolated else ["--kill-rest"]), "--", *inner]

    def _sandboxed(self, spec: RunSpec, fds: list[int]) -> tuple[list[str], dict[str, str], str, tuple[int, int] | None]:
        """bwrap's argv; the fds it must inherit (options, seccomp program) go into `fds`."""
        uid, gid = self.uid_for(spec.slot)
        etc = _bwrap.write_etc(self.config.workdir / "etc" / str(uid), uid, gid)
        fds.append(_seccomp.program_fd())
        r, w = os.pipe()
        plan = _bwrap.BwrapPlan(
            python_roots=self.config.python_roots, etc_dir=etc,
            ro={**self.config.extra_ro, **spec.ro}, rw={spec.cwd: spec.scratch, **spec.rw},
            env=self._env(spec, spec.cwd, [str(Path(self.config.python).parent)]),
            masks=(*self.config.masks, *spec.masks), cwd=spec.cwd, gpus=spec.gpus,
            shm_bytes=self.config.shm_bytes, tmp_bytes=self.config.tmp_bytes, info_fd=w,
            seccomp_fd=fds[-1], privileged=self.privileged,
        )
        fds.append(_bwrap.args_fd(_bwrap.bwrap_options(plan)))
        argv = _bwrap.bwrap_argv(self.config.bwrap, fds[-1], self._inner(spec, list(spec.argv), fds[0]))
        return argv, {"PATH": "/usr/bin:/bin"}, "/", (r, w)

    def _plain(self, spec: RunSpec, report_fd: int) -> tuple[list[str], dict[str, str], str, tuple[int, int] | None]:
        """Unisolated: rewrite inside paths (/trial, /data, ...) to their host paths."""
        mapping = {spec.cwd: spec.scratch, **self.config.extra_ro, **spec.ro, **spec.rw}

        def host(value: str) -> str:
            """The host path an inside path stands for."""
            for inside, path in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
                if value == inside or value.startswith(inside.rstrip("/") + "/"):
                    return str(path) + value[len(inside):]
            return value

        tmp = spec.scratch.parent / (spec.scratch.name + ".tmp")
        tmp.mkdir(exist_ok=True)
        env = {k: host(v) for k, v in self._env(spec, str(spec.scratch), [str(Path(self.config.python).parent)]).items()}
        env["TMPDIR"] = str(tmp)
        argv = self._inner(spec, [host(a) for a in spec.argv], report_fd)
        return argv, env, str(spec.scratch), None
