"""The evaluator backend of a search (or of a standalone evaluator): one per process, built here.

Trials and evaluator jobs of a process share it, so they never oversubscribe the machine's
slots (and slots are leased host-wide, so neither do several processes).
"""

from __future__ import annotations

from pathlib import Path

from evaluator_service.local import LocalBackend, LocalBackendConfig
from lineage.state import StateLayout


def local_backend(root: Path, slots: int) -> LocalBackend:
    """The local backend of the state directory `root`: its evaluator work dir and data."""
    layout = StateLayout(Path(root))
    return LocalBackend(LocalBackendConfig(workdir=layout.evaluator, data_root=layout.data, cpu_slots=max(1, slots)))
