"""The trial spec and the outcome: the two frozen models the evaluator takes and gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# `valid` becomes keep or discard in the lineage; the rest are DESIGN.md failure statuses.
OUTCOME_STATUSES = (
    "valid",
    "crash",
    "preflight_crash",
    "size_blocked",
    "train_budget_overrun",
    "eval_budget_overrun",
    "disqualified",
    "cancelled",
    "infra_error",
)


class TrialSpec(BaseModel):
    """What the evaluator is asked to run: a materialised snapshot of one task's recipe."""

    model_config = ConfigDict(frozen=True)

    task: str
    profile: str = Field("", description="the task's profile ('' = the full task)")
    tree: Path = Field(description="directory holding the submitted editable tree (read only)")
    seeds: int | None = Field(None, ge=1, description="None: the task's default")
    gpus: int | None = Field(None, ge=0, description="None: the task's default")
    seed_offset: int = Field(0, ge=0, description="first seed; calibration runs use disjoint seeds")
    smoke: bool = Field(True, description="run the smoke phases (a confirmation re-run of code that passed them skips them)")
    search_id: str | None = None
    exp_id: int | None = None
    label: str = Field("", description="free text for logs (e.g. 'exp 12 by opt')")


class Outcome(BaseModel):
    """What the evaluator measured, and the status it assigned. Frozen; never raised."""

    model_config = ConfigDict(frozen=True)

    status: str = Field(description="'valid' or a failure status (OUTCOME_STATUSES)")
    score: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict, description="phase -> seconds")
    artifact_bytes: int | None = None
    failure: str = Field("", description="short summary: last error line, deepest recipe frame")
    self_reported: bool = Field(False, description="any number taken from the trial's own output")
    unisolated: bool = Field(False, description="ran without the sandbox (explicit opt-out)")
    seeds: int = 0
    log_tail: str = Field("", description="bounded tail of the failing phase's output")

    def lineage_fields(self) -> dict[str, Any]:
        """The keyword fields `LineageStore.finish_trial` takes."""
        return self.model_dump(exclude={"seeds", "log_tail"})
