"""The contract every evaluator backend passes (`Backend` in evaluator_service/base.py).

A backend's test module subclasses `RunnerContract` and provides one fixture, `runner`,
returning a `RunnerHarness`: `backend(slots)` builds a fresh backend with that many slots, and
`spec(kind)` gives a trial spec that backend can run, for kind in "ok" (a valid trial of about
0.1 s), "crash" (exits 1) and "sleep" (runs until its budget, about 20 s, unless cancelled).
"""

from __future__ import annotations

import time
from typing import Protocol

import pytest

from evaluator_service.base import Backend
from evaluator_service.exceptions import JobNotFoundError
from evaluator_service.models import TrialSpec


class RunnerHarness(Protocol):
    def backend(self, slots: int = 1) -> Backend: ...

    def spec(self, kind: str) -> TrialSpec: ...


class RunnerContract:
    """Behaviour every backend shares. See the module docstring for the fixture."""

    def test_submit_then_wait_returns_the_outcome(self, runner: RunnerHarness) -> None:
        backend = runner.backend()
        job = backend.submit(runner.spec("ok"))
        outcome = backend.wait(job, timeout=20)
        assert outcome is not None and outcome.status == "valid"
        assert backend.get(job).state == "finished" and backend.get(job).outcome == outcome
        backend.close()

    def test_a_crash_is_an_outcome_not_an_exception(self, runner: RunnerHarness) -> None:
        backend = runner.backend()
        outcome = backend.wait(backend.submit(runner.spec("crash")), timeout=20)
        assert outcome is not None and outcome.status == "crash" and outcome.failure
        backend.close()

    def test_wait_with_timeout_returns_none_while_running(self, runner: RunnerHarness) -> None:
        backend = runner.backend()
        job = backend.submit(runner.spec("sleep"))
        assert backend.wait(job, timeout=0.2) is None
        backend.close()

    def test_cancel_queued_and_running_jobs(self, runner: RunnerHarness) -> None:
        backend = runner.backend(slots=1)
        running = backend.submit(runner.spec("sleep"))
        queued = backend.submit(runner.spec("ok"))
        _wait_state(backend, running, "running")
        assert backend.cancel(queued) and backend.get(queued).state == "cancelled"
        assert backend.cancel(running)
        outcome = backend.wait(running, timeout=10)
        assert outcome is not None and outcome.status == "cancelled"
        assert backend.cancel(running) is False
        backend.close()

    def test_jobs_start_first_come_first_served(self, runner: RunnerHarness) -> None:
        backend = runner.backend(slots=1)
        jobs = [backend.submit(runner.spec("ok")) for _ in range(3)]
        for job in jobs:
            backend.wait(job, timeout=20)
        infos = backend.list()
        assert [i.id for i in infos] == jobs
        starts = [i.started_at for i in infos]
        assert starts == sorted(starts)
        backend.close()

    def test_capacity_is_the_jobs_that_run_at_once(self, runner: RunnerHarness) -> None:
        backend = runner.backend(slots=2)
        assert backend.capacity == 2
        jobs = [backend.submit(runner.spec("sleep")) for _ in range(3)]
        _wait_state(backend, jobs[0], "running")
        _wait_state(backend, jobs[1], "running")
        time.sleep(0.3)
        assert backend.get(jobs[2]).state == "queued"
        backend.close()

    def test_forget_drops_a_finished_job_and_keeps_a_running_one(self, runner: RunnerHarness) -> None:
        backend = runner.backend(slots=1)
        done = backend.submit(runner.spec("ok"))
        assert backend.wait(done, timeout=20) is not None
        running = backend.submit(runner.spec("sleep"))
        _wait_state(backend, running, "running")
        assert backend.forget(done) is True
        with pytest.raises(JobNotFoundError):
            backend.get(done)
        assert [i.id for i in backend.list()] == [running]
        assert backend.forget(running) is False and backend.get(running).state == "running"
        backend.cancel(running)
        assert backend.wait(running, timeout=10) is not None and backend.forget(running) is True
        with pytest.raises(JobNotFoundError):
            backend.forget("no-such-job")
        backend.close()

    def test_unknown_job_raises(self, runner: RunnerHarness) -> None:
        backend = runner.backend()
        with pytest.raises(JobNotFoundError):
            backend.wait("no-such-job", timeout=0)
        backend.close()


def _wait_state(backend: Backend, job: str, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while backend.get(job).state != state:
        assert time.monotonic() < deadline, backend.get(job)
        time.sleep(0.02)
