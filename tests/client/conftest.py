"""Fixtures for the closed-loop tests: the quick test task and a CLI runner in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
