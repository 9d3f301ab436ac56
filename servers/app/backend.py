"""The evaluator backend of a search (or of a standalone evaluator): one per process, built here.

Trials and evaluator jobs of a process share it, so they never oversubscribe the machine's
slots (and slots are leased host-wide, so neither do several processes). A search names its
backend in its config (`SearchConfig.backend`, `backend_options`); `search_backend` builds it
with the search's task, so every job of the search runs that task, recorded settings included.
A search on `workers` has its trials run by `autoresearch worker` processes (servers/app/remote.py);
its own processes build a local backend for evaluator jobs and calibration only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from evaluator_service.base import Backend
from evaluator_service.base import backend_class as evaluator_backend_class
from evaluator_service.local import LocalBackend, LocalBackendConfig
from lineage.models import REMOTE_WORKERS, SearchConfig
from lineage.state import StateLayout, check_lineage_for
from tasks.base import Task


class BackendChoiceError(ValueError):
    """A backend name or option the search cannot use; the message says what to pass instead."""


def local_backend(root: Path, slots: int, task: Task | None = None, *, unisolated: bool = False) -> LocalBackend:
    """The local backend of the state directory `root`: its evaluator work dir and data.

    With `task`, every spec runs that task object (a search's, under the settings its calibration
    recorded; `evaluate` refuses a spec of another task or profile), not the registry's.
    """
    layout = StateLayout(Path(root))
    config = LocalBackendConfig(workdir=layout.evaluator, data_root=layout.data, cpu_slots=max(1, slots),
                                unisolated=unisolated)
    if task is None:
        return LocalBackend(config)
    return LocalBackend(config, tasks=lambda _name, _profile="": task)


def backend_class(name: str) -> type:
    """The class a backend name (or dotted path) stands for.

    Raises:
        BackendChoiceError: unknown name, or a path that does not import.
    """
    try:
        return evaluator_backend_class(name)
    except ValueError as e:
        raise BackendChoiceError(str(e)) from None


def check_backend(name: str, options: Mapping[str, str], *, database_url: str | None = None) -> None:
    """Refuse, before a search records them, a backend or options that could never be built.

    A backend class declares its settings as a pydantic model in `config_class` (the first
    argument it takes, with `workdir` and `data_root` filled in here); the options must fit it.
    `workers` (trials run by `autoresearch worker` processes) takes no options (each worker
    host says its own slots) and needs a PostgreSQL lineage: a `database_url` given here that is
    not one is refused (None: not known here; `StateDir.create` refuses it then).
    """
    if name == REMOTE_WORKERS:
        if options:
            raise BackendChoiceError(f"backend {REMOTE_WORKERS!r} takes no options (drop {', '.join(options)}): "
                                     "each `autoresearch worker` says its own GPUs or slots")
        try:
            if database_url is not None:
                check_lineage_for(SearchConfig(task="-", backend=name), database_url)
        except ValueError as e:
            raise BackendChoiceError(str(e)) from None
        return
    cls = backend_class(name)
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        if options:
            raise BackendChoiceError(f"backend {name!r} takes no options; drop {', '.join(options)}")
        return
    known = set(config_class.model_fields) - {"workdir", "data_root"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BackendChoiceError(f"backend {name!r} has no option {', '.join(unknown)}; "
                                 f"its options are {', '.join(sorted(known)) or 'none'}")
    try:
        config_class(workdir=Path("/"), data_root=Path("/"), **options)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BackendChoiceError(f"backend {name!r} option {where}: {first['msg']}") from None


def search_backend(config: SearchConfig, root: Path, slots: int, task: Task, *,
                   unisolated: bool = False) -> Backend:
    """The backend a search's config names, working in the state directory `root`, running
    `task` for every spec. `slots`: the local backend's CPU slots (other backends size
    themselves from their options); `unisolated`: the explicit opt-out of the sandbox."""
    check_backend(config.backend, config.backend_options)  # the rules init applied, for a config edited since
    if config.backend in ("local", REMOTE_WORKERS):  # workers elsewhere run the trials; jobs run here
        return local_backend(root, slots, task, unisolated=unisolated)
    cls = backend_class(config.backend)
    layout = StateLayout(Path(root))
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        raise BackendChoiceError(f"backend {config.backend!r} declares no config_class, so a search cannot build it")
    extra: dict[str, object] = {}
    if unisolated:
        if "unisolated" not in config_class.model_fields:
            raise BackendChoiceError(f"backend {config.backend!r} always runs trials in its sandbox")
        extra["unisolated"] = True
    settings = config_class(workdir=layout.evaluator, data_root=layout.data, **config.backend_options, **extra)
    return cls(settings, tasks=lambda _name, _profile="": task)
