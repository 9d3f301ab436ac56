"""LocalBackend: the runner contract, plus slots, fake GPUs and the uid sweep."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evaluator_service.base import get_backend
from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import TrialSpec
from evaluator_service.slots import SlotPool
from tests.contracts.runner import RunnerContract
from tests.evaluator_service.conftest import make_sandbox
from tests.evaluator_service.toytask import ToyTask

RECIPES = {
    "ok": None,
    "crash": "import sys\nsys.exit('boom')\n",
    "sleep": "import time\ntime.sleep(60)\n",
    "gpu": "import json, os, time\ntime.sleep(0.6)\njson.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n",
}


class LocalHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.tasks = {
            f"toy-{kind}": ToyTask(tmp_path / kind, **({"recipe": r} if r else {}), name=f"toy-{kind}",
                                   budgets={"train": 20.0}, gpus=4 if kind == "gpu" else 0)
            for kind, r in RECIPES.items()
        }
        self.made: list[LocalBackend] = []

    def backend(self, slots: int = 1, devices: list[str] | None = None) -> LocalBackend:
        config = LocalBackendConfig(workdir=self.tmp / "work", data_root=self.tmp / "data", cpu_slots=slots)
        pool = SlotPool(devices) if devices else SlotPool([], cpu_slots=slots)
        backend = LocalBackend(config, tasks=lambda name, _profile="": self.tasks[name], pool=pool,
                               sandbox=make_sandbox(self.tmp))
        self.made.append(backend)
        return backend

    def spec(self, kind: str, **kw) -> TrialSpec:
        task = self.tasks[f"toy-{kind}"]
        return TrialSpec(task=task.name, tree=task.recipe_dir(), **kw)


@pytest.fixture
def runner(tmp_path):
    harness = LocalHarness(tmp_path)
    yield harness
    for backend in harness.made:
        backend.close()
        backend.sandbox.close()


class TestLocalBackend(RunnerContract):
    pass


def test_get_backend_by_name_and_dotted_path(tmp_path):
    config = LocalBackendConfig(workdir=tmp_path / "w", data_root=tmp_path / "d", devices=(), cpu_slots=1)
    for name in ("local", "evaluator_service.local.LocalBackend"):
        backend = get_backend(name, config, tasks=lambda n, p="": None)
        assert isinstance(backend, LocalBackend)
        backend.close()


def test_two_half_node_trials_share_a_fake_node_and_a_full_node_trial_waits(runner):
    backend = runner.backend(devices=[str(i) for i in range(8)])
    a, b = (backend.submit(runner.spec("gpu")) for _ in range(2))
    full = backend.submit(runner.spec("gpu", gpus=8))
    for job in (a, b, full):
        assert backend.wait(job, timeout=20).status == "valid"
    ia, ib, ifull = (backend.get(j) for j in (a, b, full))
    assert set(ia.devices).isdisjoint(ib.devices) and len(ia.devices) == len(ib.devices) == 4
    assert ia.started_at < ib.finished_at and ib.started_at < ia.finished_at  # ran together
    assert sorted(ifull.devices) == [str(i) for i in range(8)]
    assert ifull.started_at >= max(ia.finished_at, ib.finished_at) - 0.05


def test_trials_run_concurrently_on_cpu_slots(runner):
    backend = runner.backend(slots=2)
    t0 = time.monotonic()
    jobs = [backend.submit(runner.spec("gpu", gpus=0)) for _ in range(2)]
    assert all(backend.wait(j, timeout=20).status == "valid" for j in jobs)
    infos = [backend.get(j) for j in jobs]
    assert {i.slots for i in infos} == {(0,), (1,)}
    assert time.monotonic() - t0 < 2.5  # two 0.6 s trials side by side, not one after the other


def test_unknown_task_is_an_infra_error_outcome(runner):
    backend = runner.backend()
    job = backend.submit(TrialSpec(task="no-such-task", tree=runner.tmp))
    outcome = backend.wait(job, timeout=5)
    assert outcome.status == "infra_error" and "KeyError" in outcome.failure
