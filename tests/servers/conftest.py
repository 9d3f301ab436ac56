"""Fixtures for the server tests: a real search (digits-speedrun, SQLite file) and clients.

Searches are created with a given baseline score (no calibration), so tool-logic tests take
milliseconds; tests that evaluate real trials create their own runtime with workers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from fastmcp import Client

from evaluator_service.local import LocalBackend, LocalBackendConfig
from servers.app.jobs import EvaluationJobs
from servers.app.runtime import SearchRuntime
from servers.app.init import Baseline, init_search
from servers.suite import SPECIALIST_SERVERS, build_suite
from tasks.registry import get_task

TASK = "digits-speedrun"
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from client.cli import app; app()"]


def make_search(path: Path, **kwargs: object) -> Path:
    # these tests finish trials by hand and read the tools' views of keeps: a candidate keep is
    # decided at once (confirmation has its own tests, tests/evaluator_service/test_confirm.py)
    kwargs.setdefault("confirm_runs", 0)
    init_search(TASK, path, baseline=Baseline(score=2.0, spread=0.05, n=3), **kwargs)  # type: ignore[arg-type]
    return path


@pytest.fixture
def search(tmp_path: Path) -> Path:
    """A roles-arm search with the lineage on."""
    return make_search(tmp_path / "state")


@pytest.fixture
def rt(search: Path) -> Iterator[SearchRuntime]:
    runtime = SearchRuntime.open(search, workers=0)
    yield runtime
    runtime.close()


@contextmanager
def standalone_jobs(evaluator_dir: Path) -> Iterator[EvaluationJobs]:
    """A standalone evaluator's jobs of the test task on a local backend of their own, with
    everything they write (trees under `submissions/`, scratch, data) inside `evaluator_dir`."""
    backend = LocalBackend(LocalBackendConfig(workdir=evaluator_dir, data_root=evaluator_dir / "data", cpu_slots=1))
    service = EvaluationJobs(evaluator_dir / "submissions", default_task=get_task(TASK), backend=backend)
    try:
        yield service
    finally:
        service.close()
        backend.close()


Connect = Callable[..., "AsyncIterator[Client]"]


@pytest.fixture
def connect(rt: SearchRuntime):  # type: ignore[no-untyped-def]
    """`async with connect("opt") as c:` an in-memory client bound to a specialist."""

    @asynccontextmanager
    async def _connect(specialist: str | None = "opt", servers=SPECIALIST_SERVERS, runtime=None):  # type: ignore[no-untyped-def]
        async with Client(build_suite(runtime or rt, specialist, servers=servers)) as client:
            yield client

    return _connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server this test started (SIGTERM, then SIGKILL), and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.fixture
def http_server(search: Path, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start `autoresearch serve --transport http` on a free loopback port; returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(state: Path = search, *extra: str) -> str:
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*CLI, "serve", "--state", str(state), "--transport", "http", "--port", str(port), *extra],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        procs.append(proc)
        wait_port(port, proc, log)
        return f"http://127.0.0.1:{port}/mcp"

    yield start
    for proc in procs:
        stop(proc)
