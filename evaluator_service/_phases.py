"""The steps of one trial: a phase run, the scorer run, and the interactive eval.

Every step raises `Stopped(status, failure, log)` when the trial ends early with a normal
outcome (crash, overrun, flood, cancel); `evaluate` turns that into an `Outcome`. Layout and
environment follow the contract in `tasks/base.py` (`/trial`, `/data`, `/scorer`, `/hidden`,
`/outputs/<phase>/<seed>/...`, `/result`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from evaluator_service._files import remove_tree, safe_copy
from evaluator_service._host import GpuMemory
from evaluator_service.exceptions import TaskConfigError
from evaluator_service.failure import summarize
from evaluator_service.sandbox import PhaseRun, RunSpec, Sandbox
from evaluator_service.slots import Lease
from tasks.base import DataDirs, InteractiveEval, Phase, Task

RESULT_MAX_BYTES = 1 << 20
DEFAULT_SCORE_BUDGET_S = 600.0


class Stopped(Exception):
    """The trial ended early with a normal (non-valid) outcome."""

    def __init__(self, status: str, failure: str, log: str = "") -> None:
        super().__init__(f"{status}: {failure}")
        self.status, self.failure, self.log = status, failure, log
        self.run: PhaseRun | None = None  # the run that ended it, where one did


@dataclass
class TrialContext:
    """Everything the steps of one trial share."""

    task: Task
    sandbox: Sandbox
    data: DataDirs
    lease: Lease
    jobdir: Path
    tree: Path
    masks: tuple[Path, ...]
    cancel: threading.Event | None = None
    progress: Callable[[str], None] = lambda _msg: None
    wall_s: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: dict[str, list[float | None]] = field(default_factory=dict)
    artifact_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> Path:
        """Collected outputs, laid out as `<phase>/<seed index>/...`."""
        return self.jobdir / "outputs"

    def budget(self, name: str) -> float:
        """The wall budget of phase `name` (a task without one is misconfigured)."""
        budgets = self.task.limits.phase_budgets_s
        if name not in budgets:
            raise TaskConfigError(f"task {self.task.name!r} has no budget for phase {name!r}")
        return float(budgets[name])

    def base_spec(self, argv: list[str], scratch: Path, budget: float, *, trial_code: bool = True,
                  lease: Lease | None = None, **kw: Any) -> RunSpec:
        """A `RunSpec` with the task's limits and the lease's (or `lease`'s) devices, threads, slot.

        Trial code runs on the task's budget clock; harness code (scorers) on the wall clock.
        """
        lim, lease = self.task.limits, lease or self.lease
        clock = lim.budget_clock if trial_code else "wall"
        return RunSpec(
            argv=tuple(argv), scratch=scratch, budget_s=budget, output_cap=lim.output_cap_bytes,
            scratch_cap=lim.scratch_bytes, memory_bytes=lim.memory_bytes, max_procs=lim.max_procs,
            gpus=lease.devices, threads=lease.threads, masks=self.masks,
            slot=lease.slot, clock=clock, wall_cap_s=budget * lim.wall_backstop, **kw,
        )

    def note_peak(self, phase: str, key: str, value: float | None) -> None:
        """Keep a peak memory figure (MiB) of one run of `phase` under `extra[key]`."""
        if value is not None:
            self.extra.setdefault(key, {}).setdefault(phase, []).append(value)

    def record(self, phase: str, run: PhaseRun, wall: float | None = None) -> None:
        """Keep the run's wall and CPU seconds (and survivors) for the timings and `finalize`.

        Runs of one phase are recorded in seed order (concurrent seeds are recorded after
        their wave, by index)."""
        self.wall_s.setdefault(phase, []).append(run.wall_s if wall is None else wall)
        self.cpu_s.setdefault(phase, []).append(run.cpu_s)
        self.extra.setdefault("survivors_killed", {}).setdefault(phase, []).append(run.survivors_killed)
        self.note_peak(phase, "peak_rss_mib", run.peak_rss_mib)

    def fresh_dir(self, name: str, source: Path | None = None, slot: int | None = None) -> Path:
        """An empty (or copied-from-`source`) dir in the job dir, owned by the slot's uid."""
        path = self.jobdir / name
        remove_tree(path)
        if source is not None:
            safe_copy(source, path)
        path.mkdir(parents=True, exist_ok=True)
        return self.sandbox.prepare_dir(path, self.lease.slot if slot is None else slot)


def phase_argv(phase: Phase, python: str, seed: int, nproc: int) -> list[str]:
    """The phase's argv with `{python}`/`{seed}` substituted, behind torchrun if asked."""
    argv = [a.replace("{python}", python).replace("{seed}", str(seed)) for a in phase.argv]
    if not phase.torchrun:
        return argv
    if not phase.argv or phase.argv[0] != "{python}":
        raise TaskConfigError(f"torchrun phase {phase.name!r} must start with '{{python}}'")
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *argv[1:]]


def check(run: PhaseRun, *, what: str, overrun_status: str, fail_status: str, roots: tuple[str, ...],
          budget: float, output_cap: int, scratch_cap: int | None, clock: str = "wall") -> None:
    """Raise `Stopped` unless `run` exited 0 on its own."""
    if run.killed == "cancelled":
        raise Stopped("cancelled", f"{what}: cancelled", run.output)
    if run.killed == "budget":
        raise Stopped(overrun_status, f"{what} exceeded its {_budget_text(budget, clock)} (killed at "
                                      f"{_used_text(run)})", run.output)
    if run.killed == "output_cap":
        raise Stopped(fail_status, f"{what}: output exceeded the {output_cap} byte cap; killed", run.output)
    if run.killed == "scratch_cap":
        raise Stopped(fail_status, f"{what}: scratch use exceeded the {scratch_cap} byte cap; killed", run.output)
    if run.rc != 0:
        summary = summarize(run.output, run.rc, roots)
        raise Stopped(fail_status, f"{what}: {summary}" if summary else f"{what} failed (rc {run.rc})", run.output)


def _budget_text(budget: float, clock: str) -> str:
    return f"{budget:g} s budget" if clock == "wall" else f"{budget:g} CPU-second budget"


def _used_text(run: PhaseRun) -> str:
    cpu = f", {run.cpu_s:.1f} CPU-s" if run.cpu_s is not None else ""
    return f"{run.wall_s:.1f} s wall{cpu}"


def _check_rel(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise TaskConfigError(f"phase output {rel!r} must be a relative path inside the scratch dir")
    return p


def run_phase(ctx: TrialContext, phase: Phase, seed: int, index: int, *, lease: Lease | None = None,
              cancel: Any = None, record: bool = True) -> PhaseRun:
    """Run one phase for one seed in a fresh scratch copy; collect its outputs.

    `seed` is what the recipe sees (`AR_SEED`); `index` (0..seeds-1) names the output dir.
    `lease` narrows the trial's lease (one GPU of it, for a seed of a spread phase); `cancel`
    replaces the trial's cancel event; with `record=False` the caller records the run.
    """
    smoke, lease = phase.kind == "smoke", lease or ctx.lease
    scratch = ctx.fresh_dir(f"scratch/{phase.name}-{index}", ctx.tree, slot=lease.slot)
    nproc = len(lease.devices) or ctx.task.resources.nproc_per_trial
    env = {**phase.env, "AR_DATA": "/data", "AR_SEED": str(seed), "AR_PHASE": phase.name,
           "AR_SMOKE": "1" if smoke else "0"}
    budget = ctx.budget(phase.name)
    spec = ctx.base_spec(phase_argv(phase, ctx.sandbox.config.python, seed, nproc), scratch, budget,
                         lease=lease, ro={"/data": ctx.data.public}, env=env)
    try:
        with GpuMemory(lease.devices) as gpu:
            run = ctx.sandbox.run(spec, cancel=cancel or ctx.cancel)
        ctx.note_peak(phase.name, "peak_gpu_mib", gpu.peak_mib)
        if record:
            ctx.record(phase.name, run)
        try:
            check(run, what=f"{phase.name} (seed {seed})" if phase.per_seed else phase.name,
                  overrun_status=phase.overrun_status, fail_status="preflight_crash" if smoke else "crash",
                  roots=("/trial", str(scratch)), budget=budget, output_cap=spec.output_cap,
                  scratch_cap=spec.scratch_cap, clock=spec.clock)
        except Stopped as stop:
            stop.run = run
            raise
        if not smoke:
            _collect(ctx, phase, index, scratch)
        return run
    finally:
        remove_tree(scratch)


def _collect(ctx: TrialContext, phase: Phase, index: int, scratch: Path) -> None:
    dest = ctx.outputs / phase.name / str(index)
    dest.mkdir(parents=True, exist_ok=True)
    for d in (ctx.outputs, dest.parent, dest):
        os.chmod(d, 0o755)  # readable by the scorer's uid whatever the evaluator's umask
    for rel in phase.outputs:
        src = scratch / _check_rel(rel)
        if os.path.lexists(src):
            safe_copy(src, dest / rel, limit=ctx.task.limits.scratch_bytes)


def _read_result(result_file: Path, output: str) -> dict[str, Any] | None:
    """The scorer's JSON object: AR_RESULT if written, else the last JSON line it printed."""
    try:
        if result_file.is_file() and not result_file.is_symlink() and result_file.stat().st_size <= RESULT_MAX_BYTES:
            obj = json.loads(result_file.read_text())
            if isinstance(obj, dict):
                return obj
    except (OSError, ValueError):
        pass
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def scorer_spec(ctx: TrialContext, seeds: int, budget: float, interactive: bool) -> RunSpec:
    """The scoring sandbox: `/scorer`, `/hidden`, `/outputs`, `/data` read-only, `/result` writable."""
    scratch, result = ctx.fresh_dir("score"), ctx.fresh_dir("result")
    ctx.outputs.mkdir(exist_ok=True)
    os.chmod(ctx.outputs, 0o755)
    python = ctx.sandbox.config.python
    argv = [a.replace("{python}", python).replace("{scorer_dir}", "/scorer") for a in ctx.task.scorer_argv()]
    env = {"AR_HIDDEN": "/hidden", "AR_OUTPUTS": "/outputs", "AR_DATA": "/data",
           "AR_SEEDS": str(seeds), "AR_RESULT": "/result/score.json"}
    if interactive:
        env["AR_INTERACTIVE"] = "1"
    ro = {"/scorer": ctx.task.scorer_dir(), "/hidden": ctx.data.hidden, "/outputs": ctx.outputs,
          "/data": ctx.data.public}
    hidden = Path(os.path.realpath(ctx.data.hidden))
    masks = tuple(m for m in ctx.masks if not _under(Path(os.path.realpath(m)), hidden))
    spec = ctx.base_spec(argv, scratch, budget, trial_code=False, cwd="/score", ro=ro,
                         rw={"/result": result}, env=env)
    return dataclasses.replace(spec, masks=masks)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def score_budget(ctx: TrialContext) -> float:
    """The `score` budget, else the `eval` budget, else 600 s."""
    budgets = ctx.task.limits.phase_budgets_s
    return float(budgets.get("score", budgets.get("eval", DEFAULT_SCORE_BUDGET_S)))


def run_scorer(ctx: TrialContext, seeds: int) -> dict[str, Any]:
    """Score the collected outputs in a second sandbox that alone sees the hidden data."""
    budget = score_budget(ctx)
    spec = scorer_spec(ctx, seeds, budget, interactive=False)
    run = ctx.sandbox.run(spec, cancel=ctx.cancel)
    ctx.record("score", run)
    check(run, what="scorer", overrun_status="eval_budget_overrun", fail_status="crash",
          roots=("/scorer",), budget=budget, output_cap=spec.output_cap, scratch_cap=spec.scratch_cap)
    result = _read_result(ctx.jobdir / "result" / "score.json", run.output)
    if result is None:
        raise Stopped("crash", "scorer: no JSON result", run.output)
    return result


def artifact_source(ctx: TrialContext, ie: InteractiveEval) -> Phase:
    """The main phase whose collected outputs hold the interactive artifact."""
    want = PurePosixPath(ie.artifact_dir)
    for phase in reversed(ctx.task.run_plan.phases):
        if phase.kind == "main" and any(want == PurePosixPath(o) or PurePosixPath(o) in want.parents
                                        for o in phase.outputs):
            return phase
    raise TaskConfigError(f"no main phase lists {ie.artifact_dir!r} among its outputs")


def run_interactive(ctx: TrialContext, ie: InteractiveEval, seed: int, source: Phase) -> dict[str, Any]:
    """Artifact and scorer in two sandboxes wired by pipes, bounded by the eval budget."""
    budget = ctx.budget("eval")
    art_dir = ctx.outputs / source.name / str(seed) / _check_rel(ie.artifact_dir)
    scratch = ctx.fresh_dir(f"artifact-{seed}", art_dir if art_dir.exists() else None)
    python = ctx.sandbox.config.python
    # The artifact gets its own files and nothing else: no data, recipe or train scratch, or
    # a few bytes of code could rebuild a model from the training data at answer time.
    a_spec = ctx.base_spec([a.replace("{python}", python) for a in ie.argv], scratch, budget,
                           env={"AR_SEED": str(seed), "AR_PHASE": "eval", "AR_SMOKE": "0"})
    s_spec = scorer_spec(ctx, 1, budget, interactive=True)
    s2a_r, s2a_w = os.pipe()
    a2s_r, a2s_w = os.pipe()
    try:
        artifact = ctx.sandbox.start(a_spec, stdin=s2a_r, stdout=a2s_w)
        try:
            scorer = ctx.sandbox.start(s_spec, stdin=a2s_r, stdout=s2a_w)
        except BaseException:
            artifact.kill("stopped")
            artifact.wait()
            raise
    finally:
        for fd in (s2a_r, s2a_w, a2s_r, a2s_w):
            os.close(fd)
    deadline = artifact.t0 + a_spec.wall_deadline_s
    over = (lambda: "budget" if artifact.over_cpu_budget() else "") if a_spec.clock == "cpu" else None
    s_run = scorer.wait(cancel=ctx.cancel, deadline=deadline, watch=over)
    eval_wall = time.monotonic() - artifact.t0
    if s_run.killed:
        artifact.kill(s_run.killed)
    a_run = artifact.wait(cancel=ctx.cancel, deadline=min(deadline, time.monotonic() + 2.0), overrun="stopped")
    ctx.record("eval", a_run, wall=eval_wall)
    remove_tree(scratch)
    return _interactive_result(ctx, ie, budget, a_run, s_run, a_spec)


def _interactive_result(ctx: TrialContext, ie: InteractiveEval, budget: float, a_run: PhaseRun,
                        s_run: PhaseRun, a_spec: RunSpec) -> dict[str, Any]:
    if s_run.killed == "budget" or a_run.killed == "budget":
        raise Stopped(ie.overrun_status, f"eval exceeded its {_budget_text(budget, a_spec.clock)} "
                                         f"(artifact at {_used_text(a_run)})", a_run.output)
    if a_run.killed != "stopped":
        check(a_run, what="artifact", overrun_status=ie.overrun_status, fail_status="crash",
              roots=("/trial", str(a_spec.scratch)), budget=budget, output_cap=a_spec.output_cap,
              scratch_cap=a_spec.scratch_cap)
    check(s_run, what="scorer", overrun_status=ie.overrun_status, fail_status="crash", roots=("/scorer",),
          budget=budget, output_cap=a_spec.output_cap, scratch_cap=a_spec.scratch_cap)
    result = _read_result(ctx.jobdir / "result" / "score.json", s_run.output)
    if result is None:
        raise Stopped("crash", "scorer: no JSON result", s_run.output)
    return result
