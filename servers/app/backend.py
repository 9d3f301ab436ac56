"""The evaluator backend of a search (or of a standalone evaluator): one per process, built here.

Trials and evaluator jobs of a process share it, so they never oversubscribe the machine's
slots (and slots are leased host-wide, so neither do several processes).
"""

from __future__ import annotations

from pathlib import Path

from evaluator_service.local import LocalBackend, LocalBackendConfig
from lineage.state import StateLayout
from tasks.base import Task


def local_backend(root: Path, slots: int, task: Task | None = None) -> LocalBackend:
    """The local backend of the state directory `root`: its evaluator work dir and data.

    With `task`, every spec runs that task object (a search's, under the settings its calibration
    recorded; `evaluate` refuses a spec of another task or profile), not the registry's.
    """
    layout = StateLayout(Path(root))
    config = LocalBackendConfig(workdir=layout.evaluator, data_root=layout.data, cpu_slots=max(1, slots))
    if task is None:
        return LocalBackend(config)
    return LocalBackend(config, tasks=lambda _name, _profile="": task)
