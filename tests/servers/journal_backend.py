"""A backend outside the registry, named by dotted path: the local backend plus a journal of the
jobs it was given, so a test can see which backend ran a search's trials.

"A new backend = one module": a class with a `config_class` (its settings, with `workdir` and
`data_root` filled in by the search) taking `(config, tasks=...)`.
"""

from __future__ import annotations

from pydantic import Field

from evaluator_service.local import LocalBackend, LocalBackendConfig
from evaluator_service.models import TrialSpec


class JournalConfig(LocalBackendConfig):
    journal: str = Field(pattern=r"^[\w.-]+$", description="file under the work dir: one line per submitted job")


class JournalBackend(LocalBackend):
    config_class = JournalConfig

    def submit(self, spec: TrialSpec) -> str:
        job = super().submit(spec)
        assert isinstance(self.config, JournalConfig)
        with (self.config.workdir / self.config.journal).open("a") as f:
            f.write(f"{job}\t{spec.label}\t{spec.seeds}\t{spec.smoke}\n")
        return job
