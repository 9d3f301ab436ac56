"""Fixtures: a real sandbox in a private work dir, toy tasks with prepared data, and the
backends a search's trials run on (`trial_backend`, one parameter per backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator_service.base import Backend
from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import Sandbox, SandboxConfig
from evaluator_service.slots import SlotPool
from tasks.base import DataDirs, Task
from tests.evaluator_service.toytask import ToyTask

# Trial uids for tests start above the default range, clear of any evaluator already running here.
TEST_UID_BASE = 62000


def make_sandbox(tmp_path: Path, **kw: Any) -> Sandbox:
    return Sandbox(SandboxConfig(workdir=tmp_path / "work", uid_base=TEST_UID_BASE, **kw))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = make_sandbox(tmp_path)
    yield sb
    sb.close()


@pytest.fixture
def toy(tmp_path: Path) -> Callable[..., tuple[ToyTask, DataDirs]]:
    """Build a ToyTask (keyword args as ToyTask) with its data prepared."""

    def make(recipe: str | None = None, **kw: Any) -> tuple[ToyTask, DataDirs]:
        task = ToyTask(tmp_path / "task", **({"recipe": recipe} if recipe else {}), **kw)
        return task, prepare_data(task, tmp_path / "data")

    return make


TRIAL_BACKENDS = ["local", pytest.param("slurm", marks=[pytest.mark.slow, pytest.mark.integration,
                                                         pytest.mark.timeout(240)])]
"""The backends a search's trials run on: a test module runs its tests on each with
`pytestmark = pytest.mark.parametrize("trial_backend", TRIAL_BACKENDS, indirect=True)`."""


@pytest.fixture(params=["local"])
def trial_backend(request: pytest.FixtureRequest, tmp_path: Path,
                  sandbox: Sandbox) -> Iterator[Callable[[Task], Backend]]:
    """Build the backend a search's worker submits to, running `task` for every spec (one job at a
    time): the local backend by default; "slurm" submits each to the session's real SLURM cluster."""
    made: list[Backend] = []
    cluster = request.getfixturevalue("slurm_cluster") if request.param == "slurm" else None

    def make(task: Task) -> Backend:
        backend: Backend
        if cluster is not None:
            from evaluator_service.slurm import SlurmBackend, SlurmBackendConfig

            backend = SlurmBackend(SlurmBackendConfig(workdir=tmp_path / "work", data_root=tmp_path / "bdata",
                                                      max_jobs=1, poll_s=0.2, time_margin_s=60),
                                   tasks=lambda _name, _profile="": task, sandbox=sandbox.config)
        else:
            config = LocalBackendConfig(workdir=tmp_path / "work", data_root=tmp_path / "bdata", cpu_slots=1)
            backend = LocalBackend(config, tasks=lambda _name, _profile="": task, pool=SlotPool([], cpu_slots=1),
                                   sandbox=sandbox)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def run(task: Any, data: DataDirs, sandbox: Sandbox, **spec: Any) -> Outcome:
    """Evaluate the task's recipe dir (or `tree=`) with the given spec fields."""
    spec.setdefault("tree", task.recipe_dir())
    return evaluate(task, TrialSpec(task=task.name, **spec), sandbox=sandbox, data_dirs=data)
