"""The trial spec and the outcome: the two frozen models the evaluator takes and gives.

`Outcome` and its status vocabulary `OUTCOME_STATUSES` are defined once, in `lineage.models`
(the bottom of the import graph: the store takes the outcome whole), and re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lineage.models import OUTCOME_STATUSES, Outcome

__all__ = ["OUTCOME_STATUSES", "Outcome", "TrialSpec"]


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
