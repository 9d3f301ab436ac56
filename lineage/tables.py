"""SQL tables of the lineage (sqlmodel). The same schema serves SQLite and PostgreSQL.

Times are timezone-aware UTC. JSON columns hold free-form metrics, timings and payloads.
The indexes are the ones the views use: nothing in `lineage/` loads every row of a search.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class SearchRow(SQLModel, table=True):
    __tablename__ = "search"

    id: str = Field(primary_key=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    baseline_score: float | None = None
    baseline_spread: float | None = None
    baseline_n: int = 0
    best_exp_id: int | None = None
    best_score: float | None = None
    next_exp_id: int = 1
    schema_version: int = 1


class TrialRow(SQLModel, table=True):
    __tablename__ = "trial"
    __table_args__ = (
        UniqueConstraint("search_id", "exp_id", name="uq_trial_exp"),
        Index("ix_trial_status_exp", "search_id", "status", "exp_id"),
        Index("ix_trial_status_score", "search_id", "status", "score"),
        Index("ix_trial_specialist_exp", "search_id", "specialist", "exp_id"),
        Index("ix_trial_parent", "search_id", "parent_exp", "exp_id"),
        Index("ix_trial_running", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    search_id: str = Field(foreign_key="search.id", max_length=200)
    exp_id: int
    specialist: str = Field(max_length=200)
    status: str = Field(max_length=40)
    parent_exp: int | None = None
    hypothesis: str = Field(default="", sa_column=Column(Text, nullable=False))
    expected_delta: float | None = None
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    score: float | None = None
    delta: float | None = None
    margin: float | None = None
    best_at_finish: int | None = None
    decision: str = Field(default="", sa_column=Column(Text, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    artifact_bytes: int | None = None
    failure: str = Field(default="", sa_column=Column(Text, nullable=False))
    log_tail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    self_reported: bool = False
    unisolated: bool = False
    snapshot: str | None = Field(default=None, max_length=80)
    worker: str | None = Field(default=None, max_length=300)
    attempts: int = 0
    seeds: int | None = None
    gpus: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None


# Columns added after their table was first released: `create_all` makes a new table whole, and
# an existing database gains these when an engine is made (`lineage._engine.add_columns`).
ADDED_COLUMNS = (("trial", "log_tail", "TEXT NOT NULL DEFAULT ''"),)


class SnapshotFileRow(SQLModel, table=True):
    """One file of a content-addressed snapshot (a snapshot is its manifest digest)."""

    __tablename__ = "snapshot_file"

    snapshot: str = Field(primary_key=True, max_length=80)
    path: str = Field(primary_key=True, max_length=1000)
    blob: str = Field(max_length=80)
    size: int
    mode: int = 0o644


class SnapshotBlobRow(SQLModel, table=True):
    """One file's bytes, named by their sha256: how snapshots reach workers on other hosts.

    Written beside the manifest (`snapshot_file`) when the lineage is in PostgreSQL, once per
    distinct content (a snapshot that changes one file adds one row). Added after the first
    release: `create_all` makes it in an older database when an engine is made.
    """

    __tablename__ = "snapshot_blob"

    blob: str = Field(primary_key=True, max_length=80)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (Index("ix_event_search", "search_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    search_id: str = Field(max_length=200)
    ts: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=80)
    specialist: str | None = Field(default=None, max_length=200)
    exp_id: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SessionRow(SQLModel, table=True):
    __tablename__ = "specialist_session"
    __table_args__ = (Index("ix_session_search", "search_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    search_id: str = Field(max_length=200)
    specialist: str = Field(max_length=200)
    model: str = Field(max_length=200)
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    exp_id: int | None = None
    stop_reason: str = Field(default="", max_length=200)
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    transcript: str | None = Field(default=None, max_length=1000)


class ConfirmationRunRow(SQLModel, table=True):
    """One re-run of a candidate keep or of the best it must beat, in interleaved order."""

    __tablename__ = "confirmation_run"
    __table_args__ = (
        UniqueConstraint("search_id", "exp_id", "ref_exp", "idx", name="uq_confirmation_run"),
        Index("ix_confirmation_trial", "search_id", "exp_id", "idx"),
    )

    id: int | None = Field(default=None, primary_key=True)
    search_id: str = Field(max_length=200)
    exp_id: int  # the candidate
    ref_exp: int  # the best it is compared with
    idx: int  # position in the interleaved order: even = candidate, odd = best
    arm: str = Field(max_length=20)  # "candidate" | "best"
    seed: int
    status: str = Field(max_length=40)
    score: float | None = None
    wall_s: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
