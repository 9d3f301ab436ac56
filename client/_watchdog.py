"""Run an agent CLI so that it cannot outlive the supervisor:

    python -I -S _watchdog.py FD DIR -- CMD...

Started as a session leader (the caller asks for a new session), the watchdog starts CMD, which
inherits its stdin, stdout and stderr, and waits for whichever comes first:

- CMD exits: the watchdog exits with CMD's status. What CMD left running is in the watchdog's
  session, where the caller's `kill_tree` sweeps it.
- FD, the read end of a pipe whose write end only the supervisor holds, reads EOF: the
  supervisor is gone (even by `os._exit` or SIGKILL, which run no cleanup), so the watchdog
  kills everything it started, removes DIR (the session's private dir: it holds the
  specialist's token), then kills its own process group, itself included.

SIGTERM and SIGINT sent to the watchdog are passed on to CMD (a polite stop, before the kill).
It runs with -I -S and imports nothing from the project.
"""

import os
import select
import shutil
import signal
import sys


def _stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) of every live process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    raw = fh.read()
                fields = raw[raw.rindex(")") + 2:].split()
                if fields[0] not in ("Z", "X"):
                    out[int(name)] = (int(fields[1]), int(fields[3]))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _kill_everything(private: str) -> None:
    """Everything this watchdog started (read before any kill breaks the parent links, so one
    that left for a session of its own is found too) and every member of its session; then its
    own process group, itself included."""
    stats, me = _stats(), os.getpid()
    found, todo = set(), [me]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid and p not in found)
    found |= {p for p, (_, sid) in stats.items() if sid == os.getsid(0)}
    for pid in found - {me}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(private, ignore_errors=True)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    guard, private, cmd = int(argv[1]), argv[2], argv[4:]
    child = os.fork()
    if child == 0:
        os.close(guard)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT):  # asked to stop: CMD is asked, and may clean up
        signal.signal(sig, lambda signum, _frame: os.kill(child, signum))
    poll = select.poll()
    poll.register(guard, select.POLLIN | select.POLLHUP)
    pidfd = os.pidfd_open(child)
    poll.register(pidfd, select.POLLIN)
    while True:
        for fd, _ in poll.poll():
            if fd == pidfd:
                return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) % 256
            if not os.read(guard, 1):  # the supervisor never writes: EOF means it is gone
                _kill_everything(private)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
