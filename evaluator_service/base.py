"""The backend protocol: where trials run. One seam, chosen by string.

`get_backend("local", config)` returns a `LocalBackend`; a dotted path
("pkg.module.Class") selects any other implementation. Every backend passes the contract
suite in `tests/contracts/runner.py`.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from evaluator_service.models import Outcome, TrialSpec

JobState = Literal["queued", "running", "finished", "cancelled"]

BACKENDS = {"local": "evaluator_service.local.LocalBackend"}


class JobInfo(BaseModel):
    """A frozen view of one job."""

    model_config = ConfigDict(frozen=True)

    id: str
    task: str
    label: str = ""
    state: JobState
    submitted_at: float = Field(description="epoch seconds")
    started_at: float | None = None
    finished_at: float | None = None
    devices: tuple[str, ...] = ()
    slots: tuple[int, ...] = ()
    outcome: Outcome | None = None


@runtime_checkable
class Backend(Protocol):
    """Runs trials and hands back outcomes.

    Invariants:
    - `submit` returns at once; jobs start in submission order (first come, first served) as
      slots free up, and a job asking for k GPUs starts only when k are free.
    - A trial's failure (crash, overrun, harness error) is an `Outcome`, never an exception
      from `wait`. A cancelled job's outcome has status `cancelled`.
    - `list` and `get` return frozen snapshots. All methods are thread-safe.
    """

    def submit(self, spec: TrialSpec) -> str:
        """Queue a trial.

        Returns:
            the job id.
        """

    def wait(self, job_id: str, timeout: float | None = None) -> Outcome | None:
        """Block until the job is finished or cancelled.

        Returns:
            the outcome, or None if `timeout` seconds passed first.
        Raises:
            JobNotFoundError: unknown id.
        """

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job, or kill a running one (its outcome says `cancelled`).

        Returns:
            True if the job was queued or running, False if it had already finished.
        Raises:
            JobNotFoundError: unknown id.
        """

    def get(self, job_id: str) -> JobInfo:
        """Raises `JobNotFoundError`."""

    def list(self) -> list[JobInfo]:
        """Every job known to this backend, oldest first."""

    def close(self) -> None:
        """Cancel what is queued or running and stop the workers."""


def get_backend(name: str, *args: Any, **kwargs: Any) -> Backend:
    """Build a backend by short name (`local`) or dotted path (`pkg.module.Class`)."""
    path = BACKENDS.get(name, name)
    module, _, cls = path.rpartition(".")
    if not module:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)} or a dotted path")
    return getattr(importlib.import_module(module), cls)(*args, **kwargs)
