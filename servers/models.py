"""What the tools return: small frozen models, so every result has an output schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lineage.models import Trial

SUMMARY_CHARS = 200


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileInfo(_Frozen):
    path: str
    bytes: int
    editable: bool
    modified: bool = False  # differs from the snapshot the workspace was rebased to


class Origin(_Frozen):
    """Which trial the workspace was last rebased to: the parent of its next submission."""

    parent_exp: int
    snapshot: str


class WorkspaceListing(_Frozen):
    parent_exp: int | None
    total_bytes: int
    max_total_bytes: int
    files: list[FileInfo]


class FileSlice(_Frozen):
    path: str
    first_line: int
    last_line: int
    total_lines: int
    content: str
    next_offset: int | None = None  # pass as `offset` to read on; None at the end


class EditResult(_Frozen):
    path: str
    replacements: int
    first_line: int
    bytes: int


class WriteResult(_Frozen):
    path: str
    bytes: int
    created: bool


class WorkspaceDiff(_Frozen):
    parent_exp: int
    files_changed: list[str]
    diff: str
    truncated: bool


class TrialInfo(_Frozen):
    """One trial row as a specialist sees it, plus where it stands if not finished."""

    exp_id: int
    specialist: str
    status: str
    finished: bool
    settled: bool = Field(description="finished, or confirming (scored; re-runs against the best decide its "
                          "keep later): a waiter may move on to its next change")
    parent_exp: int | None = None
    hypothesis: str = ""
    expected_delta: float | None = None
    notes: str = ""
    score: float | None = None
    delta: float | None = Field(None, description="score minus the best at finish time (signed)")
    margin: float | None = Field(None, description="noise margin in force at finish time")
    decision: str = ""
    failure: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    artifact_bytes: int | None = None
    self_reported: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_position: int | None = Field(None, description="queued trials ahead of this one")
    elapsed_s: float | None = Field(None, description="seconds since the evaluator started it")

    @classmethod
    def of(cls, t: Trial, queue_position: int | None = None) -> TrialInfo:
        elapsed = None
        if t.status.value == "running" and t.started_at is not None:
            start = t.started_at if t.started_at.tzinfo else t.started_at.replace(tzinfo=UTC)
            elapsed = round((datetime.now(UTC) - start).total_seconds(), 1)
        data = t.model_dump(include=(set(cls.model_fields) & set(Trial.model_fields)) - {"status"})
        return cls(**data, status=t.status.value, finished=t.status.is_finished(), settled=t.status.is_settled(),
                   queue_position=queue_position, elapsed_s=elapsed)


class TrialSummary(_Frozen):
    """One row of a trial listing (long text cut to 200 characters)."""

    exp_id: int
    specialist: str
    status: str
    parent_exp: int | None = None
    score: float | None = None
    delta: float | None = None
    hypothesis: str = ""
    note: str = ""

    @classmethod
    def of(cls, t: Trial) -> TrialSummary:
        return cls(exp_id=t.exp_id, specialist=t.specialist, status=t.status.value, parent_exp=t.parent_exp,
                   score=t.score, delta=t.delta, hypothesis=t.hypothesis[:SUMMARY_CHARS],
                   note=t.note_line[:SUMMARY_CHARS])


class TrialPage(_Frozen):
    trials: list[TrialSummary]
    offset: int
    next_offset: int | None = Field(None, description="pass as offset for the next page; None at the end")
    note: str = ""


class PreflightInfo(_Frozen):
    ok: bool
    status: str = Field("", description="'preflight_crash' or 'size_blocked' when not ok")
    message: str = ""
    projected_bytes: int | None = None
    checks: dict[str, Any] = Field(default_factory=dict)


class SyntaxInfo(_Frozen):
    ok: bool
    errors: list[str] = Field(default_factory=list, description="'path:line: message' per error")


class SubmitResult(_Frozen):
    exp_id: int
    status: str
    parent_exp: int | None
    queue_position: int | None = None
    snapshot: str
    preflight: PreflightInfo
    message: str


class SnapshotFile(_Frozen):
    path: str
    bytes: int


class SnapshotListing(_Frozen):
    exp_id: int
    files: list[SnapshotFile]


class SnapshotText(_Frozen):
    exp_id: int
    path: str
    first_line: int
    last_line: int
    total_lines: int
    content: str
    next_offset: int | None = None


class SnapshotDiffInfo(_Frozen):
    exp_a: int
    exp_b: int
    files_changed: list[str]
    diff: str
    truncated: bool


class RebaseResult(_Frozen):
    parent_exp: int
    files: list[str]
    message: str
