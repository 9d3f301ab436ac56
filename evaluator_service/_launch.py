"""The first process of every sandbox run, and the key sweep of a slot's uid. Run as a script.

    python -I -S _launch.py PROCS -- bwrap ...   join the run's cgroup (PROCS is its
                                                 cgroup.procs file, or '-'), start a fresh
                                                 anonymous session keyring, exec the rest
    python -I -S _launch.py --clear-keys UID GID (run as root) become UID, then empty its user
                                                 and user-session keyrings

Joining the cgroup before the exec puts bubblewrap and everything it starts into the cgroup
without a race. The fresh session keyring means nothing in the caller's session keyring
(tokens, credentials) is possessed by the trial, whatever the seccomp filter allows.
Stdlib only: it runs outside any sandbox, before the project's packages matter.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys

KEYCTL_NR = {"x86_64": 250, "aarch64": 219, "ppc64le": 355, "s390x": 288, "riscv64": 219}
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR = 1, 7
KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5


def _keyctl(*args: int | None) -> int:
    nr = KEYCTL_NR.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"keyctl number unknown on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if a is not None else None for a in args))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def fresh_session_keyring() -> None:
    """Replace this process's session keyring with a new anonymous one (no-op without keys)."""
    try:
        _keyctl(KEYCTL_JOIN_SESSION_KEYRING, None)
    except OSError as e:
        if e.errno != errno.ENOSYS:  # a kernel without keyrings has nothing to isolate
            raise


def clear_user_keys() -> None:
    """Empty the calling uid's user and user-session keyrings."""
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        try:
            _keyctl(KEYCTL_CLEAR, ring)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.ENOKEY):
                raise


def main(argv: list[str]) -> None:
    if argv[:1] == ["--clear-keys"]:
        # started as root, so the interpreter was reachable; the uid is dropped only now, which
        # works wherever the venv lives (a slot uid could not even start it from a 0700 home)
        uid, gid = int(argv[1]), int(argv[2])
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        clear_user_keys()
        return
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: _launch.py PROCS|- -- COMMAND...")
    if argv[0] != "-":
        with open(argv[0], "w") as f:
            f.write(str(os.getpid()))
    fresh_session_keyring()
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
