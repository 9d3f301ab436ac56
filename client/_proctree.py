"""Process trees of agent CLIs: each started in a session of its own, killed whole, checked dead.

An agent CLI starts children of its own (its stdio MCP servers, anything its tools spawn).
`kill_tree(root)` reads the tree first (a child that called setsid keeps its parent link only
while its parent lives), SIGKILLs the root's process group, then every process found: the
tree read before, and every live member of the root's session, swept again until none is
left or `timeout_s` passes. It returns the pids still alive then (normally none), so the
caller can say so instead of assuming. Zombies count as dead: their parent (or init) reaps them.
The root is named by pid and start time, so a pid reused after the agent was reaped is never hit.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    end = raw.rfind(")")
    return raw[end + 2:].split() if end > 0 else None  # after `comm`, which may hold spaces


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session id) of `pid`, or None when it is gone."""
    fields = _fields(pid)
    return None if fields is None else (fields[0], int(fields[1]), int(fields[3]))


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot): with the pid, it names one process for good."""
    fields = _fields(pid)
    return None if fields is None else int(fields[19])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def tree(root: int) -> set[int]:
    """`root` and its live descendants, by parent links."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return {p for p in found if alive(p)}


def session_members(sid: int) -> set[int]:
    """Live processes whose session id is `sid`."""
    out = set()
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[2] == sid and st[0] not in ("Z", "X"):
            out.add(pid)
    return out


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def kill_tree(root: int, timeout_s: float = 5.0, started: int | None = None) -> list[int]:
    """Kill `root` (a session leader that started at `started` ticks) and everything it started;
    the survivors' pids.

    A pid that now names another process (`started` differs) means ours is gone and, since Linux
    keeps a pid taken while any process still has it as its group or session id, so is all of
    its session: nothing is signalled then.
    """
    now = start_ticks(root)
    if started is not None and now is not None and now != started:
        return []
    targets = tree(root) | session_members(root)
    try:
        os.killpg(root, signal.SIGKILL)
    except OSError:
        pass
    deadline = time.monotonic() + timeout_s
    while True:
        targets = {p for p in targets if alive(p)} | session_members(root)
        if not targets or time.monotonic() >= deadline:
            return sorted(targets)
        _kill(targets)
        time.sleep(0.02)
