"""SlurmBackend on a real single-node SLURM cluster: the runner contract, plus gres GPUs per
job, scancel, jobs SLURM kills from outside or at its time limit, and ElapsedRaw."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from evaluator_service.base import get_backend
from evaluator_service.models import TrialSpec
from evaluator_service.sandbox import SandboxConfig
from evaluator_service.slurm import SlurmBackend, SlurmBackendConfig
from tests.contracts.runner import RunnerContract, _wait_state
from tests.evaluator_service.conftest import TEST_UID_BASE
from tests.evaluator_service.toytask import ToyTask

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(240)]

RECIPES = {
    "ok": None,
    "crash": "import sys\nsys.exit('boom')\n",
    "sleep": "import time\ntime.sleep(60)\n",
    # holds its GPU a while; fails unless the sandbox exports one of the cluster's 4 GPUs
    "gpu": ("import json, os, time\nassert os.environ['CUDA_VISIBLE_DEVICES'] in '0 1 2 3'.split(), "
            "os.environ['CUDA_VISIBLE_DEVICES']\ntime.sleep(3)\n"
            "json.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n"),
    "long": "import time\ntime.sleep(600)\n",
}


class SlurmHarness:
    def __init__(self, tmp_path: Path, cluster) -> None:
        self.tmp = tmp_path
        self.cluster = cluster
        budgets = {"long": {"train": 900.0}}
        self.tasks = {
            f"toy-{kind}": ToyTask(tmp_path / kind, **({"recipe": r} if r else {}), name=f"toy-{kind}",
                                   budgets=budgets.get(kind, {"train": 20.0}), gpus=1 if kind == "gpu" else 0)
            for kind, r in RECIPES.items()
        }
        self.made: list[SlurmBackend] = []

    def backend(self, slots: int = 1, **kw) -> SlurmBackend:
        config = SlurmBackendConfig(workdir=self.tmp / "work", data_root=self.tmp / "data", max_jobs=slots,
                                    **{"poll_s": 0.2, "time_margin_s": 60, **kw})
        backend = SlurmBackend(config, tasks=lambda name, _profile="": self.tasks[name],
                               sandbox=SandboxConfig(workdir=self.tmp / "work", uid_base=TEST_UID_BASE))
        self.made.append(backend)
        return backend

    def spec(self, kind: str, **kw) -> TrialSpec:
        task = self.tasks[f"toy-{kind}"]
        return TrialSpec(task=task.name, tree=task.recipe_dir(), **kw)


@pytest.fixture
def runner(tmp_path, slurm_cluster):
    harness = SlurmHarness(tmp_path, slurm_cluster)
    yield harness
    for backend in harness.made:
        backend.close()


class TestSlurmBackend(RunnerContract):
    pass


def _sacct(cluster, backend: SlurmBackend, jobs: list[str]) -> dict[str, dict[str, str]]:
    ids = [backend.slurm_id(j) for j in jobs]
    rows = cluster.sacct(ids, "JobIDRaw,State,ElapsedRaw,AllocTRES")
    return {r["JobIDRaw"]: r for r in rows}


def test_get_backend_by_name_with_options_as_a_search_gives_them(runner):
    # a search builds it as config_class(workdir=, data_root=, **options), options as typed on the CLI
    options = {"max_jobs": "2", "partition": "debug", "time_margin_s": "90"}
    config = SlurmBackend.config_class(workdir=runner.tmp / "w", data_root=runner.tmp / "d", **options)
    backend = get_backend("slurm", config, tasks=lambda n, p="": runner.tasks[n])
    assert isinstance(backend, SlurmBackend) and backend.capacity == 2
    job = backend.submit(runner.spec("ok"))
    assert backend.wait(job, timeout=60).status == "valid"  # on the named partition, the default uids
    backend.close()


def test_two_one_gpu_jobs_run_at_once_on_different_gres_gpus(runner):
    backend = runner.backend(slots=2)
    jobs = [backend.submit(runner.spec("gpu")) for _ in range(2)]
    outcomes = [backend.wait(j, timeout=60) for j in jobs]
    assert all(o is not None and o.status == "valid" for o in outcomes), outcomes
    a, b = (backend.get(j) for j in jobs)
    assert len(a.devices) == len(b.devices) == 1 and set(a.devices).isdisjoint(b.devices), (a.devices, b.devices)
    assert {*a.devices, *b.devices} <= {"0", "1", "2", "3"}
    assert a.started_at < b.finished_at and b.started_at < a.finished_at  # they ran together
    rows = _sacct(runner.cluster, backend, jobs)
    assert sorted(rows) == sorted(backend.slurm_id(j) for j in jobs)
    for row in rows.values():
        assert row["State"] == "COMPLETED" and "gres/gpu=1" in row["AllocTRES"], row
    assert all(o.timings["slurm_elapsed"] >= 3 for o in outcomes)  # SLURM's clock saw the 3 s sleep
    # what was asked of sbatch: the gres, a limit of the budgets (20 s train + 600 s default
    # scorer) + the 60 s margin, rounded up to 12 minutes, and a USR2 lead well below it
    sid = backend.slurm_id(jobs[0])
    sbatch = (runner.tmp / "work" / "slurm" / sid / f"{sid}_submission.sh").read_text()
    for flag in ("--gres=gpu:1", "--time=12", "--signal=USR2@30"):
        assert f"#SBATCH {flag}\n" in sbatch, sbatch
    assert all(o.timings["train"] >= 3 for o in outcomes)  # and the evaluator's own did too


def test_a_cpu_job_gets_no_gres_and_sees_no_gpu(runner):
    backend = runner.backend()
    job = backend.submit(runner.spec("ok"))
    assert backend.wait(job, timeout=60).status == "valid"
    assert backend.get(job).devices == ()
    row = _sacct(runner.cluster, backend, [job])[backend.slurm_id(job)]
    assert "gres/gpu" not in row["AllocTRES"], row



def test_a_job_that_starts_and_ends_between_two_polls_has_its_start(runner):
    """sacct is asked every 8 s and the job takes about 2: its start is SLURM's, not a poll's."""
    backend = runner.backend(poll_s=8.0)
    sent = time.time()
    job = backend.submit(runner.spec("ok"))
    assert backend.wait(job, timeout=60).status == "valid"
    info = backend.get(job)
    assert info.started_at is not None and info.finished_at is not None, info
    assert sent - 1 <= info.started_at <= info.finished_at, (sent, info.started_at, info.finished_at)
    (row,) = runner.cluster.sacct([backend.slurm_id(job)], "JobIDRaw,Start")
    assert info.started_at == datetime.fromisoformat(row["Start"]).timestamp(), (info.started_at, row)

def test_cancel_reaches_scancel(runner):
    backend = runner.backend()
    job = backend.submit(runner.spec("sleep"))
    _wait_state(backend, job, "running", timeout=30)
    assert backend.cancel(job)
    outcome = backend.wait(job, timeout=30)
    assert outcome is not None and outcome.status == "cancelled"
    assert _sacct(runner.cluster, backend, [job])[backend.slurm_id(job)]["State"].startswith("CANCELLED")


def test_a_job_scancelled_from_outside_is_an_infra_error_to_retry(runner):
    backend = runner.backend()
    job = backend.submit(runner.spec("sleep"))
    _wait_state(backend, job, "running", timeout=30)
    time.sleep(1.5)  # well into the trial
    runner.cluster.run("scancel", backend.slurm_id(job))
    outcome = backend.wait(job, timeout=30)
    assert outcome is not None and outcome.status == "infra_error" and outcome.retry is True, outcome
    assert outcome.failure == f"slurm job {backend.slurm_id(job)} ended CANCELLED"
    assert backend.get(job).state == "finished"


def test_a_job_past_its_slurm_time_limit_is_an_infra_error_to_retry(runner):
    # the evaluator's budget (900 s) is far above SLURM's limit, forced to 1 minute through `extra`
    backend = runner.backend(extra={"time": "1"})
    job = backend.submit(runner.spec("long"))
    outcome = backend.wait(job, timeout=200)
    sid = backend.slurm_id(job)
    assert outcome is not None and outcome.status == "infra_error" and outcome.retry is True, outcome
    assert outcome.failure == f"slurm job {sid} ended TIMEOUT"
    assert outcome.timings["slurm_elapsed"] >= 60
    assert _sacct(runner.cluster, backend, [job])[sid]["State"] == "TIMEOUT"


def test_unknown_task_is_an_infra_error_without_a_slurm_job(runner):
    backend = runner.backend()
    job = backend.submit(TrialSpec(task="no-such-task", tree=runner.tmp))
    outcome = backend.wait(job, timeout=10)
    assert outcome.status == "infra_error" and "KeyError" in outcome.failure and not outcome.retry
    assert backend.slurm_id(job) is None
