"""`TrialWatch`: wakes waiting calls when their trial's status changes.

However many `wait_trial` calls wait, one thread reads the statuses of all their trials in one
query per tick and wakes only the waiters whose trial changed; the thread runs while anyone
waits. The database stays the one source of truth, so a trial finished by another process
(the supervisor's workers, another serve process) wakes its waiters just the same.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

log = logging.getLogger(__name__)
TICK_S = 0.25


@dataclass(eq=False)
class _Waiter:
    seen: str
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # its loop is closed: nobody is waiting any more
            pass


class TrialWatch:
    """Statuses of awaited trials, read by one thread; `read(exp_ids) -> {exp_id: status}`."""

    def __init__(self, read: Callable[[list[int]], dict[int, str]], tick_s: float = TICK_S) -> None:
        self.read = read
        self.tick_s = tick_s
        self._waiters: dict[int, set[_Waiter]] = {}
        self._lock = threading.Lock()
        self._polling = False

    async def changed(self, exp_id: int, seen: str, timeout: float) -> bool:
        """Wait until trial `exp_id`'s status is no longer `seen` (True) or `timeout` passes (False)."""
        waiter = _Waiter(seen, asyncio.get_running_loop())
        with self._lock:
            self._waiters.setdefault(exp_id, set()).add(waiter)
            start, self._polling = not self._polling, True
        if start:
            threading.Thread(target=self._poll, name="trial-watch", daemon=True).start()
        try:
            with anyio.move_on_after(timeout):
                await waiter.event.wait()
            return waiter.event.is_set()
        finally:
            with self._lock:
                waiters = self._waiters.get(exp_id, set())
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(exp_id, None)

    def waiting(self) -> int:
        """How many calls wait now."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def _poll(self) -> None:
        while True:
            with self._lock:
                ids = sorted(self._waiters)
                if not ids:
                    self._polling = False
                    return
            try:
                now = self.read(ids)
            except Exception:  # boundary: a failed read wakes nobody; each waiter still ends at its timeout
                log.exception("reading the statuses of awaited trials failed")
                now = {}
            with self._lock:
                woken = [w for exp, ws in self._waiters.items() if exp in now for w in ws if now[exp] != w.seen]
            for waiter in woken:
                waiter.wake()
            time.sleep(self.tick_s)
