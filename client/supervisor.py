"""The supervisor: runs the roster's specialists concurrently until a stop condition holds.

One loop per specialist (staggered starts, at most `concurrency` sessions at once), each
session fresh. Stops on: the trial budget (enforced at submission by the store, so never
exceeded, and counted across restarts), a deadline, no keep for a patience window, a spend
cap, a stop file (`<state>/STOP`, written by `autoresearch stop`), SIGINT/SIGTERM, or "no
progress" (every specialist of the run paused, below).

A session that submits nothing (the model ended its turn at once, refused, or failed) is
followed by a wait of `backoff_s`, doubling with each such session in a row up to
`backoff_max_s`; after `pause_after` in a row the specialist is paused for the rest of this
run (event `specialist_paused`, with why). A session that submits resets its count. The stop
conditions, spend cap and deadline included, are checked throughout, waits included.

Stopping never drops accepted work. On any stop, no new session starts and in-flight sessions
get `grace_s` to finish (then they are cancelled); the grace bounds sessions only. Then every
trial already accepted, queued or running, is evaluated and recorded however long that takes
(event `drain`). Only the deadline cuts evaluation short: at `deadline_s + grace_s` into the
run, what is still queued or running is recorded as `cancelled`. A second signal exits at once;
the next start reconciles what it left (running rows re-queued, queued ones evaluated).
Harness-side records (specialist sessions, events) are written here; agents touch the
lineage only through the MCP tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from client.agent import SessionCancelled, SessionResult
from lineage.exceptions import TrialFinishedError
from lineage.models import BUDGET_EXEMPT, IN_FLIGHT, SessionRecord, TrialStatus
from lineage.state import StateLayout

SessionFactory = Callable[[str, Any, int], Awaitable[SessionResult]]
"""(specialist, connected MCP client, session number) -> the finished session's result."""

NO_PROGRESS = "no progress"  # the stop reason when every specialist of the run is paused
KILL_S = 1.0
"""After cancelling running rows, how long the evaluator workers get to notice and kill them
(they check every half second) before the runtime stops the workers."""


class RunLimits(BaseModel):
    trials: int | None = Field(None, ge=0, description="trial budget of the search (all runs)")
    deadline_s: float | None = Field(None, gt=0, description="stop after this long (this run)")
    patience_s: float | None = Field(None, gt=0, description="stop when no keep for this long")
    budget_usd: float | None = Field(None, ge=0, description="stop when sessions cost this much")
    concurrency: int | None = Field(None, ge=1, description="concurrent sessions (default: roster size)")
    stagger_s: float = Field(0.5, ge=0, description="delay between specialists' first sessions")
    grace_s: float = Field(120.0, ge=0, description="how long in-flight sessions may finish after a stop")
    poll_s: float = Field(0.5, gt=0, description="how often stop conditions are checked")
    backoff_s: float = Field(2.0, ge=0, description="wait after a session that submitted nothing; doubles per one in a row")
    backoff_max_s: float = Field(300.0, ge=0, description="the longest wait after sessions that submitted nothing")
    pause_after: int = Field(5, ge=1, description="pause a specialist after this many sessions in a row without a submission")


@dataclass
class Progress:
    """What the live display shows; updated by the supervisor as it runs."""

    started: float = field(default_factory=time.monotonic)
    sessions: dict[str, str] = field(default_factory=dict)  # specialist -> what it is doing
    spend_usd: float = 0.0
    stop_reason: str = ""
    errors: int = 0
    signals: int = 0
    ended: bool = False
    paused: dict[str, str] = field(default_factory=dict)  # specialist -> why it was paused


def request_stop(state_dir: Path, reason: str = "requested") -> Path:
    path = StateLayout(Path(state_dir)).stop_request
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{datetime.now(UTC).isoformat()} {reason}\n")
    os.replace(tmp, path)
    return path


class Supervisor:
    def __init__(self, rt: Any, make_session: SessionFactory, limits: RunLimits,
                 client_for: Callable[[str], Any], only: list[str] | None = None) -> None:
        self.rt, self.make_session, self.limits, self.client_for = rt, make_session, limits, client_for
        unknown = sorted(set(only or ()) - set(rt.config.roster))
        if unknown:
            raise ValueError(f"not specialists of this search: {unknown}; its roster is {list(rt.config.roster)}")
        self.roster = list(only or rt.config.roster)
        self.store, self.sid = rt.store, rt.search_id
        self.progress = Progress()
        self.stopping = asyncio.Event()
        self.started_at = datetime.now(UTC)
        self._empty: dict[str, int] = {}  # specialist -> sessions in a row without a submission

    # ---------------------------------------------------------------- stop conditions
    def clear_stale_stop(self) -> bool:
        path = self.rt.layout.stop_request
        if path.exists():
            path.unlink()
            return True
        return False

    def stop_reason(self) -> str:
        lim, now = self.limits, time.monotonic()
        if self.rt.layout.stop_request.exists():
            return "stop file"
        if lim.deadline_s is not None and now - self.progress.started >= lim.deadline_s:
            return "deadline"
        if lim.budget_usd is not None and self.progress.spend_usd >= lim.budget_usd:
            return "spend cap"
        if lim.trials is not None and self._budget_spent():
            return "trial budget"
        if lim.patience_s is not None and self._since_last_keep() >= lim.patience_s:
            return "patience"
        return ""

    def _budget_spent(self) -> bool:
        counts = self.store.count_trials(self.sid)
        used = sum(n for s, n in counts.items() if s != "baseline" and s not in BUDGET_EXEMPT)
        return used >= (self.limits.trials or 0)

    def _since_last_keep(self) -> float:
        keeps = self.store.list_trials(self.sid, statuses=["keep"], newest_first=True, limit=1)
        last = max([self.started_at] + [t.finished_at for t in keeps if t.finished_at])
        return (datetime.now(UTC) - last).total_seconds()

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.progress.stop_reason = reason
            self.store.record_event(self.sid, "stop_requested", payload={"reason": reason})
            self.stopping.set()

    def on_signal(self, signum: int) -> None:
        self.progress.signals += 1
        if self.progress.signals == 1:
            self.stop(signal.Signals(signum).name)
        else:
            os._exit(130)  # second signal: at once; the next start reconciles running rows

    # ---------------------------------------------------------------- the loops
    def close_orphan_sessions(self) -> int:
        """Sessions a dead process left open are closed (their trials are reconciled elsewhere)."""
        open_ = [s for s in self.store.list_sessions(self.sid) if s.ended_at is None]
        for s in open_:
            self.store.record_session(s.model_copy(update={
                "ended_at": datetime.now(UTC), "stop_reason": "interrupted", "error": "the supervisor running it died"}))
        return len(open_)

    async def run(self) -> Progress:
        await asyncio.to_thread(self.close_orphan_sessions)
        self.progress.spend_usd = sum(s.cost_usd for s in self.store.list_sessions(self.sid))
        self.store.record_event(self.sid, "run_start", payload=self.limits.model_dump())
        sem = asyncio.Semaphore(self.limits.concurrency or len(self.roster))
        loops = [asyncio.create_task(self._loop(name, i, sem)) for i, name in enumerate(self.roster)]
        watcher = asyncio.create_task(self._watch())
        await self.stopping.wait()
        await self._end_sessions(loops)
        watcher.cancel()
        await self._drain()
        self.store.record_event(self.sid, "run_end", payload={"reason": self.progress.stop_reason})
        self.progress.ended = True
        return self.progress

    async def _watch(self) -> None:
        while not self.stopping.is_set():
            reason = await asyncio.to_thread(self.stop_reason)
            if reason:
                self.stop(reason)
            await asyncio.sleep(self.limits.poll_s)

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake as soon as the search stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _loop(self, specialist: str, index: int, sem: asyncio.Semaphore) -> None:
        await self._wait(index * self.limits.stagger_s)
        n = 0
        async with self.client_for(specialist) as client:
            while not self.stopping.is_set():
                async with sem:
                    if not await self._may_start():
                        return
                    n += 1
                    result = await self._session(specialist, client, n)
                if not await self._after(specialist, result):
                    return

    async def _may_start(self) -> bool:
        """Stop conditions are checked here too, not only by the watcher's poll."""
        reason = "" if self.stopping.is_set() else await asyncio.to_thread(self.stop_reason)
        if reason:
            self.stop(reason)
        return not self.stopping.is_set()

    async def _after(self, specialist: str, result: SessionResult) -> bool:
        """Back off after a session that submitted nothing; False to end the specialist's loop."""
        if result.exp_ids:
            self._empty[specialist] = 0
            return True
        if not await self._may_start():  # e.g. the budget filled up and refused its submission
            return False
        k = self._empty[specialist] = self._empty.get(specialist, 0) + 1
        if k >= self.limits.pause_after:
            await self._pause(specialist, k, result)
            return False
        wait = min(self.limits.backoff_max_s, self.limits.backoff_s * 2 ** min(k - 1, 30))
        self.progress.sessions[specialist] = f"waiting {wait:.0f}s ({k} without a submission)"
        await self._wait(wait)
        return True

    async def _pause(self, specialist: str, k: int, last: SessionResult) -> None:
        detail = f"{last.stop_reason or 'no reason'}{': ' + last.error[:200] if last.error else ''}"
        why = f"{k} sessions in a row without a submission (last: {detail})"
        self.progress.paused[specialist] = why
        self.progress.sessions[specialist] = "paused"
        await asyncio.to_thread(self.store.record_event, self.sid, "specialist_paused", specialist=specialist,
                                payload={"sessions": k, "reason": why, "last_stop_reason": last.stop_reason})
        if set(self.progress.paused) >= set(self.roster):
            self.stop(NO_PROGRESS)

    async def _session(self, specialist: str, client: Any, n: int) -> SessionResult:
        model = getattr(self.make_session, "model", "scripted")
        rec = await asyncio.to_thread(self.store.record_session, SessionRecord(
            search_id=self.sid, specialist=specialist, model=model, started_at=datetime.now(UTC)))
        self.progress.sessions[specialist] = f"session {n}"
        try:
            result = await self.make_session(specialist, client, n)
        except asyncio.CancelledError as e:  # what it had spent by then still counts
            result = e.result if isinstance(e, SessionCancelled) else SessionResult(specialist, stop_reason="cancelled")
            await asyncio.to_thread(self._record, rec, result)
            raise
        await asyncio.to_thread(self._record, rec, result)
        self.progress.errors += bool(result.error)
        self.progress.sessions[specialist] = "idle"
        return result

    def _record(self, rec: SessionRecord, result: SessionResult) -> None:
        u = result.usage
        self.store.record_session(rec.model_copy(update={
            "ended_at": datetime.now(UTC), "tokens_in": u.tokens_in, "tokens_out": u.tokens_out,
            "cache_read": u.cache_read, "cache_write": u.cache_write, "cost_usd": result.cost_usd,
            "tool_calls": result.tool_calls, "exp_id": result.exp_ids[-1] if result.exp_ids else None,
            "stop_reason": result.stop_reason, "error": result.error[:2000],
            "transcript": result.transcript,
        }))
        self.progress.spend_usd += result.cost_usd

    # ---------------------------------------------------------------- stopping
    async def _end_sessions(self, loops: list[asyncio.Task[None]]) -> None:
        """In-flight sessions get the grace period, then are cancelled."""
        _, pending = await asyncio.wait(loops, timeout=self.limits.grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _drain(self) -> None:
        """Every accepted trial (queued or running) is evaluated and recorded; only the deadline
        (plus the grace period) cuts this short, and then what is left is cancelled."""
        left = await asyncio.to_thread(self._unfinished)
        if not left:
            return
        await asyncio.to_thread(self.store.record_event, self.sid, "drain",
                                payload={"reason": self.progress.stop_reason, "exp_ids": left})
        cut = None if self.limits.deadline_s is None else \
            self.progress.started + self.limits.deadline_s + self.limits.grace_s
        while left:
            if cut is not None and time.monotonic() >= cut:
                await asyncio.to_thread(self._cancel_unfinished)
                await asyncio.sleep(KILL_S)
                return
            await asyncio.sleep(0.2)
            left = await asyncio.to_thread(self._unfinished)

    def _unfinished(self) -> list[int]:
        rows = self.store.list_trials(self.sid, statuses=IN_FLIGHT)
        return [t.exp_id for t in rows]

    def _cancel_unfinished(self) -> None:
        """Queued rows first (so no worker claims one meanwhile), then running ones, whose
        sandboxes the evaluator workers kill when they see the row cancelled."""
        why = f"cut short by the deadline (the search stopped: {self.progress.stop_reason})"
        for status in (TrialStatus.QUEUED, TrialStatus.CONFIRMING, TrialStatus.RUNNING):
            for t in self.store.list_trials(self.sid, statuses=[status]):
                with contextlib.suppress(TrialFinishedError):  # a worker finished it meanwhile
                    self.store.cancel_trial(self.sid, t.exp_id, why)
