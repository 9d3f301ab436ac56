"""Calibration: run the unmodified recipe N times and measure the noise.

Run i evaluates the task's starting recipe with the task's seeds per trial, offset so that
runs use disjoint seeds (run i sees seeds i*S .. i*S+S-1). The mean of the valid runs'
scores becomes the search's baseline row and their sample standard deviation its spread,
from which the search's noise margin is derived (`NoiseMargin.effective`). Each run's metrics are
kept too: a task may derive settings from them (a compute budget measured on the user's
machine), which the search records and applies to every evaluation (`tasks.registry.calibration_env`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evaluator_service.base import Backend
from evaluator_service.exceptions import CalibrationError
from evaluator_service.models import Outcome, TrialSpec
from lineage.base import LineageStore
from lineage.models import Trial
from tasks.base import Task


class Calibration(BaseModel):
    """What N runs of the unmodified recipe measured."""

    model_config = ConfigDict(frozen=True)

    task: str
    runs: int
    seeds_per_run: int
    scores: tuple[float, ...] = Field(description="scores of the valid runs, in run order")
    statuses: tuple[str, ...]
    metrics: tuple[dict[str, Any], ...] = Field(
        (), description="each run's metrics, in run order (beside `statuses`): what a task derives settings "
        "from, such as a calibrated compute budget (`tasks.registry.calibration_env`)")
    failures: tuple[str, ...] = ()
    mean: float
    spread: float | None = Field(None, description="sample standard deviation (None with one score)")
    unisolated: bool = False

    @property
    def n(self) -> int:
        """How many runs produced a score."""
        return len(self.scores)

    def valid_metrics(self) -> list[dict[str, Any]]:
        """The metrics of the runs that produced a score, in run order."""
        return [dict(m) for m, s in zip(self.metrics, self.statuses) if s == "valid"]


def calibration_runs(task: Task, runs: int | None = None) -> int:
    """How many runs a calibration makes: `runs`, or the task's own number when None."""
    return task.calibration_seeds if runs is None else runs


def calibration_specs(task: Task, runs: int | None = None, *, seeds_per_run: int | None = None,
                      tree: Path | None = None) -> list[TrialSpec]:
    """The trial specs of a calibration of `runs` runs (None: the task's number), disjoint seeds."""
    runs = calibration_runs(task, runs)
    if runs < 1:
        raise CalibrationError("calibration needs at least one run")
    seeds = seeds_per_run or task.run_plan.seeds
    return [TrialSpec(task=task.name, profile=getattr(task, "profile", ""), tree=tree or task.recipe_dir(), seeds=seeds,
                      seed_offset=i * seeds, label=f"calibration {i + 1}/{runs}")
            for i in range(runs)]


def summarize_runs(task: Task, specs: list[TrialSpec], outcomes: list[Outcome]) -> Calibration:
    """Mean and spread of the valid runs; raises `CalibrationError` if none was valid."""
    scores = tuple(o.score for o in outcomes if o.status == "valid" and o.score is not None)
    failures = tuple(f"{o.status}: {o.failure}" for o in outcomes if o.status != "valid")
    if not scores:
        raise CalibrationError(
            f"no calibration run of {task.name!r} produced a score: " + "; ".join(failures)[:500]
        )
    return Calibration(
        task=task.name, runs=len(specs), seeds_per_run=specs[0].seeds or task.run_plan.seeds,
        scores=scores, statuses=tuple(o.status for o in outcomes), metrics=tuple(dict(o.metrics) for o in outcomes),
        failures=failures,
        mean=statistics.fmean(scores), spread=statistics.stdev(scores) if len(scores) > 1 else None,
        unisolated=any(o.unisolated for o in outcomes),
    )


def calibrate_on(backend: Backend, task: Task, runs: int | None = None, *, seeds_per_run: int | None = None,
                 tree: Path | None = None, on_outcome: Callable[[int, Outcome], None] | None = None) -> Calibration:
    """Run the calibration's trials concurrently on a backend (the one way a calibration runs:
    `autoresearch init` and `calibrate` here, the evaluator's calibration jobs through
    `calibration_specs` and `summarize_runs` on their own backend). Each job is forgotten once
    its outcome is in."""
    specs = calibration_specs(task, runs, seeds_per_run=seeds_per_run, tree=tree)
    ids = [backend.submit(s) for s in specs]
    outcomes = []
    for i, job_id in enumerate(ids):
        outcome = backend.wait(job_id)
        assert outcome is not None  # no timeout given
        backend.forget(job_id)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(i, outcome)
    return summarize_runs(task, specs, outcomes)


def calibrate_into(store: LineageStore, search_id: str, cal: Calibration, *, snapshot: str | None = None) -> Trial:
    """Write the calibration as the search's baseline row (score = mean, spread, n)."""
    note = (f"calibrated baseline ({cal.n} of {cal.runs} runs valid, {cal.seeds_per_run} seed(s) each, "
            f"mean={cal.mean:.6g}" + (f", sd={cal.spread:.3g})" if cal.spread is not None else ")"))
    return store.set_baseline(search_id, cal.mean, cal.spread, cal.n, snapshot=snapshot, note=note,
                              metrics={"scores": list(cal.scores), "runs": cal.runs,
                                       "seeds_per_run": cal.seeds_per_run, "unisolated": cal.unisolated})
