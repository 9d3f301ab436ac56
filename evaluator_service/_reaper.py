"""The accountant inside every sandbox: runs the command, reaps its whole tree, reports CPU.

Started by the evaluator as `python -I -S -c <this file's text> FD [--kill-rest] -- CMD...`
(the project's packages are masked inside a sandbox, so its text travels on the command line).

- It makes itself the child subreaper, so every process the command leaves behind (detached
  daemons, double-forked grandchildren, torchrun's workers) is re-parented to it, and is
  reaped by it: their CPU time lands in its RUSAGE_CHILDREN.
- When the command exits, `--kill-rest` (only inside the sandbox's own PID namespace) kills
  everything else left in the namespace, then reaps it, so a daemon that did the work and
  then slept cannot keep its CPU time out of the count.
- It writes `{"cpu_s": user + system seconds of the reaped tree, "maxrss_kb": the largest
  resident set of any one of its processes}` to FD, a pipe to the evaluator that the command
  never inherits, and exits as the command did.
- It is not dumpable, so a trial of the same uid cannot open its fds through /proc.

Stdlib only, and it must stay importable as plain text: no project imports.
"""

import ctypes
import json
import os
import resource
import signal
import sys

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def _reap_rest(kill_rest: bool) -> None:
    """Reap what is left: kill and wait for all of it, or only collect what already died."""
    while True:
        if kill_rest:
            try:
                os.kill(-1, signal.SIGKILL)  # everything in this PID namespace but init and us
            except ProcessLookupError:
                pass
        try:
            pid, _ = os.waitpid(-1, 0 if kill_rest else os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def _run(cmd: list[str]) -> int:
    """Fork and exec `cmd`; wait for it (reaping any orphan that dies first); its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            sys.stderr.write(f"{cmd[0]}: {e}\n")
        os._exit(127)
    os.close(0)
    os.close(1)  # the command's pipes must see EOF when it exits, not when we do
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        if done == pid:
            return status


def main(argv: list[str]) -> None:
    fd, rest = int(argv[0]), argv[1:]
    kill_rest = rest[:1] == ["--kill-rest"]
    cmd = rest[2:] if kill_rest else rest[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.set_inheritable(fd, False)
    status = _run(cmd)
    _reap_rest(kill_rest)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.write(fd, json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}).encode())
    os.close(fd)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
