"""Frozen models that readers of the lineage get: never live ORM rows.

The trial's life crosses few files as frozen models: the evaluator's `Outcome` is passed to
`LineageStore.finish_trial` whole, the store writes a row, and readers get a `Trial` back
(optuna's FrozenTrial habit). The statuses are defined here once, at the bottom of the import
graph: `TrialStatus` (what a row holds) and `OUTCOME_STATUSES` (what an evaluator reports);
`evaluator_service` re-exports `Outcome` and `OUTCOME_STATUSES`.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TrialStatus(str, enum.Enum):
    """Every status a trial row can hold (names kept from the reference harness)."""

    BASELINE = "baseline"
    QUEUED = "queued"
    RUNNING = "running"
    CONFIRMING = "confirming"  # a candidate keep, re-run against the best before it may become the best
    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    PREFLIGHT_CRASH = "preflight_crash"
    SIZE_BLOCKED = "size_blocked"
    TRAIN_BUDGET_OVERRUN = "train_budget_overrun"
    EVAL_BUDGET_OVERRUN = "eval_budget_overrun"
    DISQUALIFIED = "disqualified"
    CANCELLED = "cancelled"
    INFRA_ERROR = "infra_error"

    def is_finished(self) -> bool:
        return self not in (TrialStatus.QUEUED, TrialStatus.RUNNING, TrialStatus.CONFIRMING)

    def is_settled(self) -> bool:
        """Whether whoever waits on the trial may move on: it is finished, or `confirming`
        (scored; paired re-runs decide its keep later, and the best does not change meanwhile)."""
        return self.is_finished() or self == TrialStatus.CONFIRMING

    def is_valid(self) -> bool:
        """A valid, scored trial (kept or not): the ones a best-so-far curve counts."""
        return self in (TrialStatus.BASELINE, TrialStatus.KEEP, TrialStatus.DISCARD)

    def counts_against_proposal(self) -> bool:
        """`infra_error` and `cancelled` are the harness's fault or choice, not the idea's."""
        return self not in (TrialStatus.INFRA_ERROR, TrialStatus.CANCELLED)


# Statuses that give their trial-budget slot back: the harness's fault or choice, not the idea's.
BUDGET_EXEMPT = (TrialStatus.INFRA_ERROR.value, TrialStatus.CANCELLED.value)
FINISHED_STATUSES = tuple(s for s in TrialStatus if s.is_finished())
# Accepted and not yet decided: what a stopping search still evaluates (and confirms).
IN_FLIGHT = (TrialStatus.QUEUED, TrialStatus.RUNNING, TrialStatus.CONFIRMING)
# What the evaluator may report when it finishes a trial; `valid` becomes keep or discard here,
# the rest are DESIGN.md's failure statuses.
OUTCOME_STATUSES = ("valid",) + tuple(
    s.value
    for s in TrialStatus
    if s.is_finished() and s not in (TrialStatus.BASELINE, TrialStatus.KEEP, TrialStatus.DISCARD)
)
LOG_TAIL_CHARS = 4_000  # the most of an outcome's log tail a row keeps (its end)
HEARTBEAT_S = 5.0  # how often a worker stamps the rows it holds (`LineageStore.heartbeat`)
STALE_HEARTBEATS = 3  # a held row whose stamp is older than this many heartbeats has lost its worker
STALE_AFTER_S = HEARTBEAT_S * STALE_HEARTBEATS
MAX_ATTEMPTS = 2  # how often a trial may start: a run lost to a dead worker or the infrastructure runs once more
REMOTE_WORKERS = "workers"  # `SearchConfig.backend` of a search whose trials `autoresearch worker` processes run


class Outcome(BaseModel):
    """What the evaluator measured, and the status it assigned. Frozen; never raised.

    `LineageStore.finish_trial` takes it whole: the row keeps every field but `seeds` (the row
    has the seeds it asked for), the log tail cut to its last `LOG_TAIL_CHARS` characters.
    An unknown field is an error where the outcome is made, not where it is stored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    retry: bool = Field(False, description="the infrastructure lost the run (node failure, preemption, killed "
                        "from outside): an `infra_error` the store re-queues while attempts remain")


class NoiseMargin(BaseModel):
    """How much better than the best a trial must be to count as a keep.

    The effective margin is the larger of `abs_delta` and `sigmas` times the calibrated
    baseline spread; both default to zero (any strict improvement keeps).
    """

    model_config = ConfigDict(frozen=True)

    abs_delta: float = Field(0.0, ge=0.0, description="absolute improvement required, in metric units")
    sigmas: float = Field(0.0, ge=0.0, description="multiple of the calibrated baseline spread")

    def effective(self, spread: float | None) -> float:
        by_spread = self.sigmas * spread if spread is not None and math.isfinite(spread) else 0.0
        return max(self.abs_delta, by_spread)


class SearchConfig(BaseModel):
    """Everything that defines a search: its task, metric, arm and keep rule."""

    model_config = ConfigDict(frozen=True)

    task: str
    profile: str = Field("", description="the task's profile this search runs ('' = the full task)")
    task_root: str = Field("", description="where the task was prepared on this machine, for tasks "
                           "fetched by `tasks prepare` ('' = the task ships with the project)")
    calibrated_env: dict[str, str] = Field(
        default_factory=dict, description="settings the task derived from this search's calibration runs (e.g. a "
        "compute budget measured on the user's machine), applied to the task for every evaluation of the search")
    backend: str = Field("local", description="where trials run: an evaluator backend's name ('local', "
                         "'slurm', or 'workers': `autoresearch worker` processes on any host, for a PostgreSQL "
                         "lineage) or a dotted path to a class")
    backend_options: dict[str, str] = Field(
        default_factory=dict, description="the backend's settings (say a SLURM partition), as KEY=VALUE text")
    score_field: str = Field("score", description="metric name shown in views and exports")
    metric_unit: str = ""
    lower_is_better: bool = True
    roster: tuple[str, ...] = Field((), description="specialists of this search, in roster order")
    arm: str = Field("roles", description="roles | generic | single | imported")
    lineage: bool = Field(True, description="False: specialists see only the current best")
    margin: NoiseMargin = NoiseMargin()
    confirm_runs: int = Field(
        0, ge=0, description="K: a candidate keep is re-run K times against the best, interleaved, and "
        "kept only if the paired improvement beats the margin at `confirm_level`; 0: keep at once"
    )
    confirm_level: float = Field(0.05, gt=0.0, lt=0.5, description="one-sided significance level of confirmation")
    max_trials: int | None = Field(
        None, ge=0, description="trial budget: submissions beyond it are refused (infra_error "
        "and cancelled trials do not count); None = unlimited"
    )
    extra_columns: tuple[str, ...] = Field(
        (), description="source columns kept verbatim for re-export (imported searches)"
    )

    @field_validator("confirm_runs")
    @classmethod
    def _pairs(cls, k: int) -> int:
        if k == 1:
            raise ValueError("confirm_runs: use 0 (keep at once) or at least 2 paired runs (one pair has no spread)")
        return k

    @property
    def task_label(self) -> str:
        """The task as views name it: with its profile when the search runs one (a proxy's
        scores do not compare with the full task's)."""
        return f"{self.task} [profile {self.profile}]" if self.profile else self.task


class ConfirmationRun(BaseModel):
    """One re-run of a candidate keep (arm "candidate") or of the best it must beat ("best")."""

    model_config = ConfigDict(frozen=True)

    exp_id: int
    ref_exp: int
    idx: int = Field(description="position in the interleaved order: even = candidate, odd = best")
    arm: str
    seed: int
    status: str
    score: float | None = None
    wall_s: float | None = None


class Search(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    config: SearchConfig
    baseline_score: float | None = None
    baseline_spread: float | None = None
    baseline_n: int = 0
    best_exp_id: int | None = None
    best_score: float | None = None
    next_exp_id: int = 1


class Trial(BaseModel):
    """One trial row as readers see it (frozen)."""

    model_config = ConfigDict(frozen=True)

    search_id: str
    exp_id: int
    specialist: str
    status: TrialStatus
    parent_exp: int | None = None
    hypothesis: str = ""
    expected_delta: float | None = None
    notes: str = ""
    score: float | None = None
    delta: float | None = Field(None, description="score minus the best at finish time")
    margin: float | None = Field(None, description="noise margin in force at finish time")
    best_at_finish: int | None = Field(None, description="exp_id of the best when this finished")
    decision: str = Field("", description="why keep/discard: 'improved', 'within noise', 'worse'")
    metrics: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    artifact_bytes: int | None = None
    failure: str = ""
    log_tail: str = Field("", description="the end of the failing phase's output (at most LOG_TAIL_CHARS)")
    self_reported: bool = False
    unisolated: bool = False
    snapshot: str | None = Field(None, description="content digest of the submitted tree")
    worker: str | None = None
    attempts: int = 0
    seeds: int | None = None
    gpus: int = 0
    extra: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def note_line(self) -> str:
        """The short failure or note line views show under a row."""
        return self.failure or self.decision or self.notes


class SessionRecord(BaseModel):
    """One specialist session (a fresh conversation) and what it cost."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    search_id: str
    specialist: str
    model: str
    started_at: datetime
    ended_at: datetime | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    exp_id: int | None = None
    stop_reason: str = ""
    error: str = ""
    transcript: str | None = None


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    search_id: str
    ts: datetime
    kind: str
    specialist: str | None = None
    exp_id: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
