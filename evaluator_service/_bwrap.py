"""The bubblewrap command line for one sandbox run (bwrap started by root, uid dropped inside).

Layout, outermost first (evaluator-facts.md §1.3 and its Addendum):

- namespaces: ipc, pid, net (only `lo`, up), uts (hostname `trial`); `--new-session`,
  `--die-with-parent` (a convenience only: the runner kills the namespace init itself);
- `/proc`, `/dev`, a sized `/dev/shm` and `/tmp` (mode 1777), so later binds land on top;
- an allow-listed read-only root: `/usr` (and the `/bin`, `/lib*`, `/sbin` links or dirs),
  `/etc/ld.so.cache`, `/etc/alternatives`, and generated `/etc/{hosts,passwd,group,
  nsswitch.conf}` so `localhost` resolves (torchrun's rendezvous) and the uid has a name;
- the interpreter prefix and the venv, read-only at their host paths, each parent created
  with mode 0755 (bwrap would otherwise create them untraversable for the trial uid);
- the caller's read-only and writable binds; masks (`--tmpfs` over a dir, `/dev/null` over
  a file) for hidden-data copies that lie under a bound directory;
- GPU device nodes (`--dev-bind-try`) and a read-only `/sys` only when GPUs are leased;
- the seccomp filter of `_seccomp` (`--seccomp FD`), loaded just before the command;
- `setpriv` to the slot's unprivileged uid with no capabilities and no-new-privs, then
  `prlimit` for the rlimits, then the command. When the evaluator is not root, bwrap makes
  an unprivileged user namespace instead and no setpriv is needed.

The options reach bwrap through a file descriptor (`--args FD`): the namespace init is a bwrap
process whose /proc/1/cmdline every trial can read, and it must not show host paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_LINKS = ("/bin", "/lib", "/lib32", "/lib64", "/sbin")
GPU_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


@dataclass
class BwrapPlan:
    """Everything that decides one bwrap command line."""

    python_roots: Sequence[Path]
    etc_dir: Path
    ro: Mapping[str, Path]
    rw: Mapping[str, Path]
    env: Mapping[str, str]
    masks: Sequence[Path]
    cwd: str
    gpus: Sequence[str] = ()
    shm_bytes: int = 1 << 30
    tmp_bytes: int = 256 << 20
    info_fd: int = -1
    seccomp_fd: int = -1
    privileged: bool = True
    _dirs: set[str] = field(default_factory=set)
    _bound: list[tuple[Path, str]] = field(default_factory=list)


def _parents(inside: str) -> list[str]:
    parts = Path(inside).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _covered(inside: str, bound: list[tuple[Path, str]]) -> bool:
    return any(inside == b or inside.startswith(b.rstrip("/") + "/") for _, b in bound)


def _bind(plan: BwrapPlan, out: list[str], flag: str, host: Path, inside: str) -> None:
    """Emit `flag host inside`, creating each missing parent with mode 0755 first."""
    if flag != "--bind" and _covered(inside, plan._bound) and Path(inside) == host:
        return  # already visible through an enclosing read-only bind
    for parent in _parents(inside):
        if parent not in plan._dirs and not _covered(parent, plan._bound):
            out += ["--perms", "0755", "--dir", parent]
            plan._dirs.add(parent)
    out += [flag, str(host), inside]
    plan._bound.append((host, inside))


def _system(plan: BwrapPlan, out: list[str]) -> None:
    _bind(plan, out, "--ro-bind", Path("/usr"), "/usr")
    for p in SYSTEM_LINKS:
        if os.path.islink(p):
            out += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            _bind(plan, out, "--ro-bind", Path(p), p)
    out += ["--perms", "0755", "--dir", "/etc"]
    plan._dirs.add("/etc")
    for p in ("/etc/ld.so.cache", "/etc/alternatives"):
        if os.path.exists(p):
            out += ["--ro-bind", p, p]
    for name in ("hosts", "passwd", "group", "nsswitch.conf"):
        out += ["--ro-bind", str(plan.etc_dir / name), f"/etc/{name}"]


def _masks(plan: BwrapPlan, out: list[str]) -> None:
    """Hide every mask path that is reachable through one of the binds."""
    for mask in plan.masks:
        real = Path(os.path.realpath(mask))
        if not real.exists():
            continue
        for host, inside in list(plan._bound):
            host_real = Path(os.path.realpath(host))
            if real == host_real or host_real in real.parents:
                target = str(Path(inside) / real.relative_to(host_real))
                if real.is_dir():
                    out += ["--tmpfs", target]
                else:
                    out += ["--ro-bind", "/dev/null", target]


def _gpus(plan: BwrapPlan, out: list[str]) -> None:
    if not plan.gpus:
        return
    for dev in plan.gpus:
        if dev.isdigit():
            out += ["--dev-bind-try", f"/dev/nvidia{dev}", f"/dev/nvidia{dev}"]
    for node in GPU_CONTROL_NODES:
        out += ["--dev-bind-try", node, node]
    out += ["--ro-bind", "/sys", "/sys"]


def bwrap_options(plan: BwrapPlan) -> list[str]:
    """Every bwrap option for `plan` (they travel through `--args FD`, see `bwrap_argv`)."""
    out = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--hostname", "trial", "--die-with-parent", "--new-session", "--clearenv"]
    if not plan.privileged:
        out += ["--unshare-user", "--disable-userns"]
    for key, value in plan.env.items():
        out += ["--setenv", key, value]
    out += ["--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(plan.shm_bytes), "--tmpfs", "/dev/shm",
            "--perms", "1777", "--size", str(plan.tmp_bytes), "--tmpfs", "/tmp"]
    plan._dirs.update({"/proc", "/dev", "/tmp"})
    _system(plan, out)
    for root in plan.python_roots:
        _bind(plan, out, "--ro-bind", root, str(root))
    for inside, host in plan.ro.items():
        _bind(plan, out, "--ro-bind", host, inside)
    for inside, host in plan.rw.items():
        _bind(plan, out, "--bind", host, inside)
    _masks(plan, out)
    _gpus(plan, out)
    if plan.info_fd >= 0:
        out += ["--info-fd", str(plan.info_fd)]
    if plan.seccomp_fd >= 0:
        out += ["--seccomp", str(plan.seccomp_fd)]
    out += ["--chdir", plan.cwd]
    return out


def bwrap_argv(bwrap: str, args_fd: int, inner: list[str]) -> list[str]:
    """`bwrap --args FD -- inner`: the options (host paths) stay out of every /proc cmdline.

    The sandbox's PID-namespace init is a bwrap process, so its /proc/1/cmdline is this argv.
    """
    return [bwrap, "--args", str(args_fd), "--", *inner]


def args_fd(options: list[str]) -> int:
    """A readable fd holding `options` NUL-separated, for `bwrap --args FD` (caller closes)."""
    fd = os.memfd_create("ar-bwrap-args", 0)
    data = memoryview(b"".join(o.encode() + b"\0" for o in options))
    while data:
        data = data[os.write(fd, data):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def setpriv_argv(setpriv: str, uid: int, gid: int) -> list[str]:
    """Drop to `uid`/`gid` with no groups, no capabilities and no-new-privs."""
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def prlimit_argv(prlimit: str, limits: Mapping[str, int]) -> list[str]:
    """`prlimit --nofile=N ... --` (hard and soft set together)."""
    return [prlimit, *(f"--{k}={v}" for k, v in limits.items()), "--"]


def write_etc(etc_dir: Path, uid: int, gid: int) -> Path:
    """Write the generated /etc files for `uid` once; return the directory."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "hosts": "127.0.0.1 localhost trial\n::1 localhost ip6-localhost\n",
        "passwd": f"root:x:0:0:root:/root:/bin/sh\ntrial:x:{uid}:{gid}:trial:/trial:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\ntrial:x:{gid}:\nnogroup:x:65534:\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for name, text in files.items():
        path = etc_dir / name
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    return etc_dir
