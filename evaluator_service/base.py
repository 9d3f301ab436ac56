"""The backend protocol: where trials run. One seam, chosen by string.

`get_backend("local", config)` returns a `LocalBackend`; a dotted path
("pkg.module.Class") selects any other implementation. Every backend passes the contract
suite in `tests/contracts/runner.py`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evaluator_service.models import Outcome, TrialSpec

JobState = Literal["queued", "running", "finished", "cancelled"]

# "workers": a search's trials run in `autoresearch worker` processes on any host, each over a
# LocalBackend of its own (servers/app/remote.py); the search's own process runs none of them.
BACKENDS = {"local": "evaluator_service.local.LocalBackend", "slurm": "evaluator_service.slurm.SlurmBackend",
            "workers": "evaluator_service.local.LocalBackend"}


class BackendConfig(BaseModel):
    """What every backend's settings hold (a backend's `config_class` extends it): where it works
    and where prepared task data lives, both seen wherever its jobs run."""

    model_config = ConfigDict(frozen=True)

    workdir: Path = Field(description="evaluator work dir (scratch dirs, job dirs)")
    data_root: Path = Field(description="prepared task data lives in <data_root>/<task>/")
    unisolated: bool = Field(False, description="explicit opt-out of the sandbox")

    @field_validator("workdir", "data_root")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        """Sandboxes (and nodes) use these by path: resolve once, whatever the caller's cwd becomes."""
        return path.resolve()


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
    - A job the infrastructure lost (a node failed, the job was preempted, killed from outside or
      ran past the scheduler's limit) ends with status `infra_error` and `retry=True`: the caller
      re-queues the trial by its attempts rule. `cancelled` means the caller's own `cancel`.
    - A finished job is kept until `forget` (a backend may also drop the oldest finished jobs
      beyond a bound of its own), so a long search does not grow the backend without limit.
    """

    @property
    def capacity(self) -> int:
        """How many jobs may run at once (a caller runs as many waiters)."""

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

    def forget(self, job_id: str) -> bool:
        """Drop a finished or cancelled job; later calls with its id raise `JobNotFoundError`.

        Returns:
            True if it was dropped, False if it is still queued or running (kept).
        Raises:
            JobNotFoundError: unknown id.
        """

    def close(self) -> None:
        """Cancel what is queued or running and stop the workers."""


def backend_class(name: str) -> type:
    """The class a backend's short name (`local`, `slurm`, ...) or dotted path stands for.

    Raises:
        ValueError: unknown name, a path that does not import, or not a class; the message says
            what to give instead.
    """
    path = BACKENDS.get(name, name)
    module, _, cls = path.rpartition(".")
    if not module:
        raise ValueError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)} "
                         "or a dotted path to a backend class (package.module.Class)")
    try:
        found = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"backend {name!r} ({path}) cannot be loaded here: {e}") from e
    if not isinstance(found, type):
        raise ValueError(f"backend {name!r} ({path}) is not a class")
    return found


def get_backend(name: str, *args: Any, **kwargs: Any) -> Backend:
    """Build a backend by short name (`local`) or dotted path (`pkg.module.Class`)."""
    return backend_class(name)(*args, **kwargs)
