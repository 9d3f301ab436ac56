"""Evaluator jobs of several services on one root (several `serve` processes of a search) (issue 8, item 8).

The backends here are real `LocalBackend`s whose only slot is already leased, so their jobs
stay queued until cancelled: no sandbox runs, and a job finishes exactly when the test says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.slots import SlotPool
from servers.exceptions import RequestError
from servers.app.jobs import EvaluationJobs, JobLimits
from tasks.registry import get_task
from tests.servers.conftest import TASK

pytestmark = pytest.mark.timeout(20)  # backends start threads; a loaded 2-core host can take seconds
TREE = {"train.py": "print('hello')\n"}


@pytest.fixture
def held(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """held(name) -> a LocalBackend whose one slot is taken (jobs stay queued)."""
    backends: list[LocalBackend] = []

    def make(name: str) -> LocalBackend:
        pool = SlotPool([], cpu_slots=1)
        pool.acquire(1)
        backend = LocalBackend(LocalBackendConfig(workdir=tmp_path / name, data_root=tmp_path / "data"), pool=pool)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


def service(root: Path, backend: LocalBackend, **kwargs: object) -> EvaluationJobs:
    return EvaluationJobs(root / "submissions", default_task=get_task(TASK), backend=backend, **kwargs)  # type: ignore[arg-type]


def wait_for(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `cond` until true; a directory removed while `cond` walks it means "look again"."""
    def holds() -> bool:
        try:
            return bool(cond())
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holds():
            return True
        time.sleep(0.02)
    return holds()


def test_services_sharing_a_root_keep_their_jobs_apart(tmp_path: Path, held) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "evaluator"
    a, b = service(root, held("a")), service(root, held("b"))
    ja = a.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
    jb = b.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
    assert ja.job_id != jb.job_id
    trees = sorted(p.parent for p in (root / "submissions").rglob("train.py"))
    assert len(trees) == 2 and trees[0].parent != trees[1].parent  # a folder per service
    a.close()
    assert b.get("opt", jb.job_id).state == "queued"
    assert [p.parent for p in (root / "submissions").rglob("train.py")] == [t for t in trees if b.work in t.parents]
    b.close()
    assert not any((root / "submissions").rglob("train.py"))


def test_a_finished_jobs_tree_goes_when_it_finishes(tmp_path: Path, held) -> None:  # type: ignore[no-untyped-def]
    backend = held("a")
    svc = service(tmp_path / "evaluator", backend)
    try:
        job = svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
        assert len(list(svc.work.rglob("train.py"))) == 1
        backend.cancel(backend.list()[0].id)  # the job ends in the backend; nobody reads it here
        assert wait_for(lambda: not any(svc.work.rglob("train.py")))
        assert svc.get("opt", job.job_id).state == "cancelled"
    finally:
        svc.close()


def test_each_caller_has_caps_on_open_jobs_and_bytes(tmp_path: Path, held) -> None:  # type: ignore[no-untyped-def]
    svc = service(tmp_path / "evaluator", held("a"), limits=JobLimits(open_jobs=2, open_bytes=100))
    try:
        first = svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
        svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
        with pytest.raises(RequestError, match="2 evaluator jobs queued or running"):
            svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1)
        assert svc.evaluate("reg", files=TREE, archive_b64=None, task=None, seeds=1).state == "queued"
        svc.cancel("opt", first.job_id)
        with pytest.raises(RequestError, match="would hold 215 bytes"):
            svc.evaluate("opt", files={"train.py": "x" * 200}, archive_b64=None, task=None, seeds=1)
        assert svc.evaluate("opt", files=TREE, archive_b64=None, task=None, seeds=1).state == "queued"
        assert len(list(svc.work.rglob("train.py"))) == 3  # refused trees were removed
    finally:
        svc.close()


def test_folders_of_dead_processes_are_swept(tmp_path: Path, held) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / "evaluator" / "submissions" / f"{gone.stdout.strip()}-abcd1234"
    (dead / "eva-x").mkdir(parents=True)
    svc = service(tmp_path / "evaluator", held("a"))
    try:
        assert not dead.exists() and svc.work.name.startswith(f"{os.getpid()}-")
    finally:
        svc.close()
