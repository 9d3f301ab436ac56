"""Fixtures for the closed-loop tests: the quick test task and a CLI runner in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK = "tests.client.quicktask.task:TASK"


def cli(*args: str, sleep_s: float = 0.0, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess:
    """Run `autoresearch ...` as a real process (cwd = the repo, so the test task imports)."""
    env = {**os.environ, "AR_QUICKTASK_SLEEP": str(sleep_s), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "client.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def popen_cli(*args: str, sleep_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "AR_QUICKTASK_SLEEP": str(sleep_s), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "client.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "search"


async def run_until_hung_then_stop(state: Path, api: Any, choice: Any, specialist: str, grace_s: float,
                                   answered: int) -> tuple[Any, Any]:
    """Run one specialist of `choice` against a fake model API that answers `answered` requests
    and then hangs; once it hangs, `autoresearch stop`: the session is cancelled after the grace.
    Returns the session's record and the run's progress."""
    from client.run import run_search
    from client.supervisor import RunLimits, request_stop
    from lineage.state import StateDir

    async def stop_once_hung() -> None:
        while len(api.requests) <= answered:
            await asyncio.sleep(0.05)
        request_stop(state, "the test")

    stopper = asyncio.create_task(stop_once_hung())
    progress = await run_search(state, choice, RunLimits(concurrency=1, stagger_s=0, grace_s=grace_s),
                                specialists=[specialist])
    await stopper
    sd = StateDir.open(state)
    try:
        (session,) = sd.store.list_sessions(sd.search_id)
    finally:
        sd.close()
    return session, progress
