"""Evaluate one trial: preflight, smoke, main phases per seed, artifact cap, scoring, verdict.

`evaluate(task, spec, sandbox=..., data_dirs=..., lease=...) -> Outcome` is the boundary of
the service: whatever happens inside (a crash, an overrun, a flood, a bug in the harness)
comes back as an `Outcome` with a status, never as an exception.

Order of a trial (each step can end it):

1. `task.preflight(tree)` -> `preflight_crash` / `size_blocked`; no sandbox time spent.
2. smoke phases (seed 0, `AR_SMOKE=1`): failure -> `preflight_crash`; overrun -> the phase's
   `overrun_status`.
3. main phases; per-seed phases once per seed, each in a fresh scratch copy as a separate
   cold process (spread over the trial's GPUs when the phase takes one GPU per process, see
   `_seeds`); wall and CPU time measured by the runner; failure -> `crash`; overrun -> the
   phase's `overrun_status`; outputs collected to `outputs/<phase>/<seed index>/`.
4. artifact bytes, measured by the evaluator; over `limits.artifact_cap_bytes` ->
   `size_blocked` without running the eval.
5. the scorer sandbox (hidden data read-only), or the interactive eval (two sandboxes wired by
   pipes, bounded by the `eval` budget; overrun -> `eval_budget_overrun`).
6. `task.finalize(Measurements)` -> status (`valid` or a failure), score, metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import statistics
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluator_service import _phases
from evaluator_service._files import ARTIFACT_ENTRY_BYTES, artifact_size, remove_tree
from evaluator_service._hidden import hidden_copies, project_package_dirs
from evaluator_service._host import gpu_facts, software
from evaluator_service._phases import Stopped, TrialContext
from evaluator_service._seeds import run_seeds
from evaluator_service.exceptions import TaskConfigError
from evaluator_service.failure import Redactor
from evaluator_service.models import Outcome, TrialSpec
from evaluator_service.sandbox import Sandbox
from evaluator_service.slots import Lease
from lineage.models import LOG_TAIL_CHARS
from tasks.base import DataDirs, Measurements, Task

Progress = Callable[[str], None]


def default_lease(threads: int | None = None) -> Lease:
    """A single CPU slot (slot 0) for standalone evaluation."""
    return Lease(slots=(0,), devices=(), threads=threads or os.cpu_count() or 1)


@functools.lru_cache(maxsize=64)
def _masks(hidden_sources: tuple[Path, ...], hidden: Path, static: tuple[Path, ...],
           public: Path) -> tuple[Path, ...]:
    copies = hidden_copies(hidden, static, live_roots=(public,))
    return (*hidden_sources, *project_package_dirs(), *copies)


def prepare_data(task: Task, root: Path) -> DataDirs:
    """`task.prepare_data(root)`, then make the data readable by the sandboxes' uids.

    `root` itself is made private (0700): sandboxes reach the data only through bind mounts.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = task.prepare_data(root)
    for top in (Path(data.public), Path(data.hidden)):
        top.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(top):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444)
    os.chmod(root, 0o700)
    return data


def trial_masks(task: Task, data: DataDirs, sandbox: Sandbox) -> tuple[Path, ...]:
    """Host paths every trial sandbox of `task` masks (see `_hidden`)."""
    static = (*sandbox.config.python_roots, *sandbox.config.extra_ro.values())
    masks = _masks(tuple(Path(p) for p in task.hidden_sources()), Path(data.hidden),
                   tuple(static), Path(data.public))
    return (*masks, Path(data.hidden))


def evaluate(task: Task, spec: TrialSpec, *, sandbox: Sandbox, data_dirs: DataDirs,
             lease: Lease | None = None, cancel: threading.Event | None = None,
             progress: Progress | None = None) -> Outcome:
    """Run one trial end to end and return its outcome (never raises)."""
    t0 = time.monotonic()
    jobdir = sandbox.config.workdir / "jobs" / uuid.uuid4().hex
    ctx: TrialContext | None = None
    redact = _redactor(task, sandbox, data_dirs, jobdir)
    try:
        if spec.task != task.name or spec.profile != getattr(task, "profile", ""):
            raise TaskConfigError(f"spec is for task {spec.task!r} (profile {spec.profile!r}), evaluator runs "
                                  f"{task.name!r} (profile {getattr(task, 'profile', '')!r})")
        jobdir.mkdir(parents=True)
        os.chmod(jobdir, 0o711)
        ctx = TrialContext(
            task=task, sandbox=sandbox, data=data_dirs, lease=_fit_lease(task, spec, lease),
            jobdir=jobdir, tree=Path(spec.tree), masks=trial_masks(task, data_dirs, sandbox),
            cancel=cancel, progress=progress or (lambda _m: None),
        )
        outcome = _run(ctx, spec, t0)
    except Stopped as stop:
        outcome = _stopped(stop, ctx, sandbox, spec, task, t0)
    except Exception as e:  # noqa: BLE001 - the service boundary: a harness failure is an outcome too
        outcome = Outcome(
            status="infra_error", failure=f"{type(e).__name__}: {e}",
            log_tail=traceback.format_exc()[-LOG_TAIL_CHARS:], unisolated=sandbox.unisolated,
            timings=_timings(ctx, t0) if ctx else {"total": time.monotonic() - t0},
        )
    finally:
        remove_tree(jobdir)
    return outcome.model_copy(update={"failure": redact(outcome.failure)[:300],
                                      "log_tail": redact(outcome.log_tail)[-LOG_TAIL_CHARS:]})


def _redactor(task: Task, sandbox: Sandbox, data: DataDirs, jobdir: Path) -> Redactor:
    """Host paths of this trial -> what its sandboxes call them (see `failure.Redactor`)."""
    paths = {str(jobdir / "outputs"): "/outputs", str(jobdir / "score"): "/score",
             str(jobdir / "result"): "/result", str(data.public): "/data", str(data.hidden): "/hidden",
             str(task.scorer_dir()): "/scorer", str(sandbox.config.workdir): "<evaluator>",
             str(Path(data.public).parent): "<data>"}
    return Redactor(paths, families={str(jobdir / "scratch"): "/trial", str(jobdir): "/trial"})


def _fit_lease(task: Task, spec: TrialSpec, lease: Lease | None) -> Lease:
    lease = lease or default_lease()
    gpus = task.resources.gpus if spec.gpus is None else spec.gpus
    if gpus == 0:
        return dataclasses.replace(lease, devices=())
    if len(lease.devices) < gpus:
        raise Stopped("infra_error", f"trial needs {gpus} GPU(s); its lease has {len(lease.devices)}")
    return dataclasses.replace(lease, devices=lease.devices[:gpus])


def _run(ctx: TrialContext, spec: TrialSpec, t0: float) -> Outcome:
    task = ctx.task
    pre = task.preflight(ctx.tree)
    if not pre.ok:
        raise Stopped(pre.status or "preflight_crash", pre.message or "preflight failed")
    seeds = spec.seeds or task.run_plan.seeds
    for phase in (p for p in task.run_plan.phases if p.kind == "smoke" and spec.smoke):
        ctx.progress(f"{phase.name} (smoke)")
        _phases.run_phase(ctx, phase, spec.seed_offset, 0)
    for phase in (p for p in task.run_plan.phases if p.kind == "main"):
        run_seeds(ctx, phase, seeds, spec.seed_offset)
    artifact = ctx.artifact_bytes = _artifact_bytes(ctx)
    cap = task.limits.artifact_cap_bytes
    if cap is not None and artifact is not None and artifact > cap:
        raise Stopped("size_blocked", f"artifact is {artifact} bytes (files, names and {ARTIFACT_ENTRY_BYTES} "
                                      f"per entry), over the {cap} byte cap")
    scorer = _score(ctx, seeds)
    verdict = task.finalize(Measurements(seeds=seeds, wall_s=dict(ctx.wall_s), scorer=scorer,
                                         artifact_bytes=artifact, extra=dict(ctx.extra),
                                         cpu_s=dict(ctx.cpu_s)))
    return Outcome(
        status=verdict.status, score=verdict.score, metrics={**verdict.metrics, "env": _env(ctx)},
        timings=_timings(ctx, t0), artifact_bytes=artifact, failure=verdict.failure,
        self_reported=bool(scorer.get("self_reported", False)),
        unisolated=ctx.sandbox.unisolated, seeds=seeds,
    )


def _artifact_bytes(ctx: TrialContext) -> int | None:
    """Size of the artifact dir (interactive tasks) or of the last main phase's outputs.

    Counted by `_files.artifact_size` (names and entries included); more entries than
    `limits.artifact_max_entries` is `size_blocked`.
    """
    ie = ctx.task.run_plan.interactive_eval
    if ie is not None:
        source = _phases.artifact_source(ctx, ie)
        dirs = [d / ie.artifact_dir for d in sorted((ctx.outputs / source.name).glob("*"))]
        sizes = [artifact_size(d) for d in dirs if d.is_dir() and not d.is_symlink()]
        if not sizes:
            raise Stopped("crash", f"{source.name} wrote no {ie.artifact_dir}/ (the artifact)")
    elif ctx.task.limits.artifact_cap_bytes is None:
        return None
    else:
        mains = [p for p in ctx.task.run_plan.phases if p.kind == "main"]
        if not mains:
            return None
        sizes = [artifact_size(d) for d in (ctx.outputs / mains[-1].name).glob("*")] or [(0, 0)]
    most = ctx.task.limits.artifact_max_entries
    entries = max(n for _, n in sizes)
    if entries > most:
        raise Stopped("size_blocked", f"artifact has {entries} files and dirs, over the cap of {most}")
    return max(b for b, _ in sizes)


def _score(ctx: TrialContext, seeds: int) -> dict[str, Any]:
    ie = ctx.task.run_plan.interactive_eval
    if ie is None:
        ctx.progress("scoring")
        return _phases.run_scorer(ctx, seeds)
    source = _phases.artifact_source(ctx, ie)
    n = seeds if source.per_seed else 1
    results = []
    for i in range(n):
        ctx.progress(f"eval seed {i + 1}/{n}" if n > 1 else "eval")
        results.append(_phases.run_interactive(ctx, ie, i, source))
    return results[0] if n == 1 else {"per_seed": results}


def _env(ctx: TrialContext) -> dict[str, Any]:
    """What the trial ran on (`_host`), and its peak memory per phase (MiB, max over runs)."""
    env: dict[str, Any] = {**software(), **gpu_facts(tuple(ctx.lease.devices))}
    for key in ("peak_rss_mib", "peak_gpu_mib"):
        peaks = {phase: round(max(vals), 1) for phase, vals in ctx.extra.get(key, {}).items() if vals}
        if peaks:
            env[key] = peaks
    return env


def _timings(ctx: TrialContext | None, t0: float) -> dict[str, float]:
    """Mean wall seconds per phase, `<phase>_cpu` mean CPU seconds beside them, and the total."""
    out = {name: statistics.fmean(walls) for name, walls in (ctx.wall_s.items() if ctx else []) if walls}
    for name, cpus in (ctx.cpu_s.items() if ctx else []):
        known = [c for c in cpus if c is not None]
        if known:
            out[f"{name}_cpu"] = statistics.fmean(known)
    out["total"] = time.monotonic() - t0
    return out


def _stopped(stop: Stopped, ctx: TrialContext | None, sandbox: Sandbox, spec: TrialSpec,
             task: Task, t0: float) -> Outcome:
    return Outcome(
        status=stop.status, failure=stop.failure, log_tail=stop.log[-4 * LOG_TAIL_CHARS:],
        timings=_timings(ctx, t0), unisolated=sandbox.unisolated, metrics={"env": _env(ctx)} if ctx else {},
        seeds=spec.seeds or task.run_plan.seeds, artifact_bytes=ctx.artifact_bytes if ctx else None,
    )
