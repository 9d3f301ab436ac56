"""Run a command that cannot read the hidden data or write the result: Linux Landlock.

    python landlock.py --deny PATH... --rw PATH... [--tcp] -- COMMAND...

The scorer sandbox sees `/hidden` and writes `/result`; the agent's code it starts (the model
worker, the recipe's own eval run) must not do either. Landlock (Linux >= 5.13, unprivileged)
restricts this process and everything it starts: read and execute everywhere except below a
`--deny` path, write only below a `--rw` path. It also stops the restricted processes from
ptracing or reading the memory of the scorer (a less restricted process) and, from Landlock
ABI 6 on, from signalling it or reaching its abstract unix sockets. Without `--tcp` no TCP
bind or connect either (ABI 4 on). `ISOLATION` says what was applied; the launcher prints it as
`landlock: <abi or none>` on stderr. Stdlib only (the scorer imports nothing from the project).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446  # the same numbers on every 64-bit architecture
_VERSION_FLAG, _PATH_BENEATH, _PR_SET_NO_NEW_PRIVS = 1, 1, 38
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
_WRITES = sum(1 << b for b in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE = 1 << 13, 1 << 14
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
_TCP = 1 | 2  # bind, connect
_SCOPES = 1 | 2  # abstract unix sockets, signals


class _Attr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _Beneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    r = _libc().syscall(ctypes.c_long(_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION_FLAG))
    return max(int(r), 0)


def _holds(path: str, deny_real: set[str]) -> bool:
    return any(d.startswith(path.rstrip("/") + "/") for d in deny_real)


def allowed_roots(deny: list[str], top: str = "/") -> list[str]:
    """The entries under `top` not at or below a denied path (a denied path's ancestors are split)."""
    deny_real = {os.path.realpath(d) for d in deny}
    out = []
    for name in sorted(os.listdir(top)):
        path = os.path.join(top, name)
        real = os.path.realpath(path)
        if real in deny_real:
            continue
        if _holds(real, deny_real) and os.path.isdir(real):
            out += allowed_roots(deny, path)
        else:
            out.append(path)
    return out


def writable_roots(rw: list[str], deny: list[str]) -> list[str]:
    """`rw`, each split like `allowed_roots` where a denied path lies below it."""
    deny_real = {os.path.realpath(d) for d in deny}
    out = []
    for path in rw:
        real = os.path.realpath(path)
        if real in deny_real or any(real.startswith(d.rstrip("/") + "/") for d in deny_real):
            continue
        out += allowed_roots(deny, real) if _holds(real, deny_real) and os.path.isdir(real) else [path]
    return out


def _add(libc: ctypes.CDLL, ruleset: int, path: str, rights: int, handled: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # vanished or unreadable: nothing to allow
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _Beneath(rights & handled, fd)
        if libc.syscall(ctypes.c_long(_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_PATH_BENEATH),
                        ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}): {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def restrict(deny: list[str], rw: list[str], tcp: bool = False) -> int:
    """Restrict this process (and what it starts); return the ABI applied (0: not available)."""
    version = abi()
    if version == 0:
        return 0
    handled = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _WRITES
    handled |= (REFER if version >= 2 else 0) | (TRUNCATE if version >= 3 else 0)
    attr = _Attr(handled, 0 if tcp or version < 4 else _TCP, _SCOPES if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24
    libc = _libc()
    ruleset = libc.syscall(ctypes.c_long(_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for path in allowed_roots(deny):
            _add(libc, ruleset, path, EXECUTE | READ_FILE | READ_DIR, handled)
        for path in writable_roots(rw, deny):
            _add(libc, ruleset, path, handled, handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(ctypes.c_long(_RESTRICT), ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return version


def _parse(argv: list[str]) -> tuple[list[str], list[str], bool, list[str]]:
    if "--" not in argv:
        sys.exit("usage: landlock.py [--deny PATH] [--rw PATH] [--tcp] -- COMMAND...")
    cut = argv.index("--")
    deny: list[str] = []
    rw: list[str] = []
    tcp, opts = False, argv[:cut]
    while opts:
        flag = opts.pop(0)
        if flag == "--tcp":
            tcp = True
        elif flag in ("--deny", "--rw") and opts:
            (deny if flag == "--deny" else rw).append(str(Path(opts.pop(0)).resolve()))
        else:
            sys.exit(f"landlock.py: bad option {flag!r}")
    return deny, rw, tcp, argv[cut + 1:]


def main(argv: list[str]) -> None:
    deny, rw, tcp, command = _parse(argv)
    if not command:
        sys.exit("landlock.py: no command after --")
    version = restrict(deny, rw, tcp)
    print(f"landlock: {version or 'none'}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
