"""The task contract: what every task environment declares, in one place.

A task is a recipe environment (DESIGN.md "Words"). It says which files a specialist may edit,
what is measured and in which direction, the limits, who the specialists are, how a trial is
run (a cheap smoke preflight, then the main phase for N seeds as separate cold processes),
what resources one trial needs, and how the harness scores it.

Invariants every implementation keeps:

- Everything here is harness code. Nothing in a task object ever imports or executes the
  trial's code in the evaluator's interpreter; trial code runs only inside the sandboxed
  phases and the (optional) interactive artifact phase.
- `prepare_data` is idempotent and puts the data the recipe may read under `public/` and the
  data only the scorer may read under `hidden/`. `hidden_sources` lists every other host path
  that holds the same hidden data (package data, caches), so sandboxes can mask them.
- Scorer scripts are standalone Python files (stdlib, plus numpy/torch where stated) run in a
  second sandbox that alone sees `hidden/`; they print one JSON object on stdout.
- `finalize` is a pure function of what the harness measured (runner wall times, scorer
  JSON, artifact bytes). It returns a verdict whose status is `valid` or a failure status.

Adding a task = one folder under `tasks/` with a `task.py` exposing `TASK`, plus one line in
`tasks/registry.py`.

Tasks prepared on the user's machine (recipe or data fetched from upstream, not shipped) add
an optional method `preparation(self) -> tasks._prepare.Plan`: the pinned sources with their
checksums, a `build(root)` that derives `<root>/public`, `<root>/hidden` and `<root>/recipe`,
the disk they take and their licence notes. `autoresearch tasks prepare NAME` runs it into
`task_root(name)`. Such a task's `recipe_dir()` is `<task root>/recipe`, its `prepare_data(root)`
returns `<task root>/public` and `/hidden` after `require_prepared` (the per-search `root` is
ignored: the data is shared by every search), and its `hidden_sources()` includes the task
root, whose raw downloads may hold hidden data. Embedded tasks have no `preparation`.

A task whose limits are measured on the user's machine (a compute budget calibrated from the
baseline) adds two optional methods: `calibration_env(runs) -> dict[str, str]`, the settings it
derives from its calibration runs' metrics, which `init` records in the search, and
`with_env(env) -> Task`, the task under them, which every evaluation of that search runs.

What code sees inside the evaluator's sandboxes (the evaluator guarantees this layout):

- Trial phases (`Phase`): cwd `/trial` = a fresh writable scratch copy of the snapshot;
  `/data` = the task's public data, read-only; `/tmp` a private tmpfs; no network; no hidden
  data anywhere. Environment: `AR_DATA=/data`, `AR_SEED`, `AR_PHASE` (phase name),
  `AR_SMOKE` ("1" in smoke phases, else "0"), `AR_THREADS` (CPU threads of the slot),
  `HOME=/trial`, `PATH`, `PYTHONUNBUFFERED=1`, `CUDA_VISIBLE_DEVICES` on GPU slots. Outputs
  are the `Phase.outputs` paths relative to `/trial`, collected after the phase.
- Scorer: cwd `/score`; `/scorer` = `scorer_dir()` read-only; `/hidden` = hidden data,
  read-only; `/outputs/<phase>/<seed>/...` = collected outputs, read-only; `/data` = public
  data; `/result` writable. Environment: `AR_HIDDEN`, `AR_OUTPUTS`, `AR_DATA`, `AR_SEEDS`,
  `AR_RESULT=/result/score.json`. The scorer writes its JSON object to `AR_RESULT` (or
  prints it as its last JSON line; on stderr when interactive). Outputs are laid out as
  `/outputs/<phase>/<i>` for i in 0..AR_SEEDS-1 (the seed index; `AR_SEED` inside a phase is
  the spec's seed offset + i). The scorer's budget is `phase_budgets_s['score']`, else
  `['eval']`, else 600 s. With an interactive eval over several seeds `Measurements.scorer`
  is `{"per_seed": [result, ...]}`; `Measurements.cpu_s` has the CPU seconds of every run
  (the whole process tree, detached descendants included) beside `wall_s`, and
  `Measurements.extra` carries `survivors_killed` per phase.
- Clocks: `Limits.budget_clock` says whether `phase_budgets_s` are wall or CPU seconds (with
  CPU budgets a phase is also killed at `wall_backstop` times its budget in wall time);
  `Metric.clock` says which clock a time score is on. GPU tasks use wall time; CPU tasks
  should use CPU time, since on a shared CPU wall time moves with the machine's load.
- Interactive eval (`InteractiveEval`): the artifact runs with cwd `/trial` holding a copy of
  the collected artifact dir and nothing else: no `/data` (public or hidden), no recipe, no
  scratch of the train phase; environment `AR_SEED`, `AR_PHASE=eval`, `AR_THREADS`, no
  `AR_DATA`. Everything it needs must be inside the artifact, which is what the cap counts.
  Its stdin/stdout are pipes to the scorer, which runs as above (with `AR_INTERACTIVE=1`)
  and talks to the artifact on its own stdin/stdout.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Clock = Literal["wall", "cpu"]
"""Which clock a time is on. CPU time (of the whole sandboxed tree, detached descendants
included) is what a CPU task should use: on a shared CPU, wall time is mostly noise."""


class Metric(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the score's name, e.g. 'train_s' or 'val_bpb'")
    unit: str = Field("", description="unit shown next to scores, e.g. 's' or 'bpb'")
    lower_is_better: bool = True
    clock: Clock = Field(
        "wall", description="for a time score: 'wall' seconds, or 'cpu' seconds of the whole process tree"
    )


class Limits(BaseModel):
    """Hard limits the evaluator enforces from outside the trial."""

    model_config = ConfigDict(frozen=True)

    phase_budgets_s: dict[str, float] = Field(
        description="wall budget per phase name ('smoke', 'train', 'eval', ...), seconds"
    )
    artifact_cap_bytes: int | None = Field(
        None, description="size cap on the trial's artifact: file bytes + path bytes + 64 per entry"
    )
    artifact_max_entries: int = Field(1000, ge=1, description="files and dirs an artifact may hold")
    gates: dict[str, float] = Field(
        default_factory=dict, description="named gates, e.g. {'min_accuracy': 0.9}"
    )
    output_cap_bytes: int = Field(1 << 20, description="captured stdout+stderr per phase")
    memory_bytes: int | None = Field(4 << 30, description="address-space cap per process (CPU tasks)")
    scratch_bytes: int = Field(512 << 20, description="max bytes a phase may write (file size cap)")
    max_procs: int = Field(256, description="process/thread cap inside one sandbox")
    budget_clock: Clock = Field(
        "wall", description="clock of phase_budgets_s: 'wall', or 'cpu' (CPU seconds of the tree)"
    )
    wall_backstop: float = Field(
        4.0, ge=1.0, description="with CPU budgets: a phase is also killed at this many times its budget in wall time"
    )


class Role(BaseModel):
    """A specialist of the task's roster and the scope text its prompt carries."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str = ""
    scope: str = Field(description="what this role owns, what is out of scope, its edit radius")


class Phase(BaseModel):
    """One sandboxed run of the trial's code.

    `argv` runs with the scratch copy of the snapshot as working directory. `{python}` in argv
    is replaced by the evaluator's interpreter, `{seed}` by the seed. `per_seed` phases run
    once per seed, each in a fresh scratch copy as a separate cold process. `outputs` are the
    files/dirs (relative to scratch) the harness collects after the phase; they are what the
    scorer sees, read-only.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    argv: tuple[str, ...]
    kind: Literal["smoke", "main"] = "main"
    per_seed: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    overrun_status: str = Field("train_budget_overrun", description="status when over budget")
    torchrun: bool = Field(False, description="launch through torchrun, one process per GPU")
    gpus_per_process: int | None = Field(
        None, ge=1, description="per-seed phases: GPUs each seed's process gets; the seeds then run at "
        "once across the trial's GPUs, each on its own and timed on its own (None: all of them, in turn)"
    )


class InteractiveEval(BaseModel):
    """An eval phase where the trial's artifact answers queries from a harness scorer.

    The evaluator starts the artifact (`argv`, run in a sandbox over a read-only copy of the
    collected `artifact_dir`, no hidden data) and the task's scorer (in a separate sandbox
    that sees `hidden/`), and connects scorer stdout -> artifact stdin, artifact stdout ->
    scorer stdin. The scorer's stderr carries its final JSON line. The whole exchange is
    bounded by the `eval` phase budget.
    """

    model_config = ConfigDict(frozen=True)

    artifact_dir: str = Field(description="output dir of the main phase that holds the artifact")
    argv: tuple[str, ...] = Field(description="how to start the artifact, relative to artifact_dir")
    overrun_status: str = "eval_budget_overrun"


class RunPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    phases: tuple[Phase, ...]
    seeds: int = Field(1, ge=1, description="seeds for per-seed phases in a normal trial")
    interactive_eval: InteractiveEval | None = None
    confirm_runs: int = Field(
        0, ge=0, description="default K of a search's confirmation of candidate keeps (K re-runs of the "
        "candidate and K of the best, interleaved; 0: keep at once). `init --confirm K` overrides it"
    )


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True)

    gpus: int = Field(0, ge=0, description="whole GPUs one trial needs (0: a CPU slot)")
    nproc_per_trial: int = Field(1, ge=1, description="processes per trial (torchrun workers)")


class Profile(BaseModel):
    """A named variant of a task for a smaller machine (say a 1-GPU proxy of an 8-GPU task).

    A user selects it explicitly (`--profile NAME`); the search records it and every view and
    report shows it, because its scores do not compare with the full task's. What it may
    change: GPUs per trial, seeds per trial, phase budgets, and environment variables added to
    every trial phase (the recipe reads them, e.g. `TTT_ENABLED=0`).
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    description: str = Field(description="what differs from the full task, and why its scores differ")
    gpus: int | None = Field(None, ge=0, description="GPUs per trial (None: the task's)")
    seeds: int | None = Field(None, ge=1, description="seeds per trial (None: the task's)")
    env: dict[str, str] = Field(default_factory=dict, description="added to every trial phase")
    phase_budgets_s: dict[str, float] = Field(default_factory=dict, description="budgets replaced")


class Tunable(BaseModel):
    """A constant from the recipe's tunable block, for the LLM-free proposers."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float | int
    kind: Literal["int", "float"]
    low: float
    high: float
    log: bool = False
    hint: Literal["lower", "higher"] | None = Field(
        None, description="the direction the task's knowledge expects to pay off (a prior, not a rule)"
    )
    owners: tuple[str, ...] = Field((), description="roles that may change it in a roles search (empty: all)")
    line: int = Field(description="1-based line of the assignment in the file")

    def owned_by(self, role: str) -> bool:
        """Whether `role` may change this constant in a roles search."""
        return not self.owners or role in self.owners


class PreflightResult(BaseModel):
    """Harness-side checks before any sandbox starts."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    status: str = Field("", description="'preflight_crash' or 'size_blocked' when not ok")
    message: str = ""
    projected_bytes: int | None = None
    checks: dict[str, Any] = Field(default_factory=dict)


class Verdict(BaseModel):
    """What `finalize` returns: a status (`valid` or a failure status) and the numbers."""

    model_config = ConfigDict(frozen=True)

    status: str
    score: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    failure: str = ""


@dataclass(frozen=True)
class DataDirs:
    public: Path
    hidden: Path


@dataclass(frozen=True)
class Measurements:
    """What the harness measured for one trial, handed to `Task.finalize`."""

    seeds: int
    wall_s: dict[str, list[float]]  # phase name -> per-run wall seconds, measured by the runner
    scorer: dict[str, Any]  # JSON from the scorer (or interactive scorer)
    artifact_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_s: dict[str, list[float | None]] = field(default_factory=dict)  # per-run CPU seconds of the tree

    def seconds(self, phase: str, clock: Clock) -> list[float]:
        """Per-run seconds of `phase` on `clock`; a run whose CPU time is unknown is left out."""
        runs = self.wall_s.get(phase, []) if clock == "wall" else self.cpu_s.get(phase, [])
        return [float(x) for x in runs if x is not None]


@runtime_checkable
class Task(Protocol):
    """One task environment. See the module docstring for the invariants."""

    name: str
    description: str
    editable: tuple[str, ...]
    entrypoint: str
    metric: Metric
    limits: Limits
    run_plan: RunPlan
    resources: Resources
    calibration_seeds: int

    def recipe_dir(self) -> Path:
        """Directory holding the task's starting recipe (exactly the editable tree)."""

    def roster(self) -> list[Role]:
        """The role specialists, in roster order."""

    def knowledge(self) -> dict[str, str]:
        """Knowledge files (name -> markdown) given to every specialist."""

    def prepare_data(self, root: Path) -> DataDirs:
        """Materialise public and hidden data under `root` (idempotent)."""

    def hidden_sources(self) -> list[Path]:
        """Other host paths holding the hidden data; sandboxes mask them."""

    def preflight(self, tree: Path) -> PreflightResult:
        """Cheap checks on a submitted tree: syntax of every editable .py, size projection."""

    def scorer_argv(self) -> tuple[str, ...]:
        """How to start the scorer (`{python}` and `{scorer_dir}` are substituted)."""

    def scorer_dir(self) -> Path:
        """Directory with the scorer script(s), bound read-only into the scoring sandbox."""

    def finalize(self, m: Measurements) -> Verdict:
        """Turn measurements into a verdict (pure; harness-owned)."""


# ---------------------------------------------------------------- shared helpers for tasks

TUNABLE_BLOCK = re.compile(r"^# --- tunables", re.M)
_TUNABLE_LINE = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>[-+0-9.eE_]+)\s*#\s*tunable\s+"
    r"(?P<kind>int|float)\s+\[(?P<low>[-+0-9.eE]+),\s*(?P<high>[-+0-9.eE]+)\](?P<options>.*)$"
)
_TUNABLE_OPTION = re.compile(
    r"^(?:(?P<log>log)|hint=(?P<hint>lower|higher)|owner=(?P<owner>[a-z][a-z0-9_-]*(?:,[a-z][a-z0-9_-]*)*))$"
)
TUNABLE_SYNTAX = "NAME = VALUE  # tunable int|float [LOW, HIGH] [log] [hint=lower|higher] [owner=ROLE[,ROLE...]]"


def parse_tunables(source: str, *, strict: bool = False) -> list[Tunable]:
    """Parse the recipe's tunable block: lines such as ``LR = 0.003  # tunable float [1e-4, 0.1]``,
    then options: ``log`` (a log scale), ``hint=lower|higher`` (the direction the task's knowledge
    expects to pay off) and ``owner=ROLE[,ROLE...]`` (the roles that may change it in a roles
    search; without it, every role). Only lines at module level count.

    Lenient by default (the harness reads recipes agents edited: an unreadable line is skipped,
    an unknown option ignored); with `strict` they raise ValueError naming the line and the
    syntax, as do an inverted range and a log scale that does not start above 0.
    """
    out: list[Tunable] = []
    for lineno, line in enumerate(source.splitlines(), start=1):
        m = _TUNABLE_LINE.match(line)
        if m is None:
            if strict and re.match(r"^[A-Z][A-Z0-9_]*\s*=.*#\s*tunable\b", line):
                raise ValueError(f"line {lineno}: {line.strip()!r} is not a tunable; write {TUNABLE_SYNTAX}")
            continue
        raw = m["value"].replace("_", "")
        value: float | int = int(float(raw)) if m["kind"] == "int" else float(raw)
        t = Tunable(name=m["name"], value=value, kind=m["kind"], low=float(m["low"]), high=float(m["high"]),
                    line=lineno, **_tunable_options(m["options"], lineno, strict))
        if strict and (t.low > t.high or (t.log and t.low <= 0)):
            why = "is inverted" if t.low > t.high else "cannot be a log scale (drop 'log' or start it above 0)"
            raise ValueError(f"line {lineno}: {t.name}'s range [{m['low']}, {m['high']}] {why}")
        out.append(t)
    return out


def _tunable_options(text: str, lineno: int, strict: bool) -> dict[str, Any]:
    """`log`, `hint=...` and `owner=...` after a tunable's range."""
    opts: dict[str, Any] = {}
    for token in text.split():
        o = _TUNABLE_OPTION.match(token)
        if o is None:
            if strict:
                raise ValueError(f"line {lineno}: unknown tunable option {token!r}; write {TUNABLE_SYNTAX}")
        elif o["log"]:
            opts["log"] = True
        elif o["hint"]:
            opts["hint"] = o["hint"]
        else:
            opts["owners"] = tuple(o["owner"].split(","))
    return opts


def syntax_errors(tree: Path, editable: tuple[str, ...]) -> list[str]:
    """Compile every editable .py file under `tree`; return 'path:line: message' per error."""
    errors: list[str] = []
    for rel in editable:
        root = tree / rel
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            if not f.exists():
                errors.append(f"{f.relative_to(tree)}: missing")
                continue
            try:
                ast.parse(f.read_bytes(), filename=str(f.relative_to(tree)))
            except SyntaxError as e:
                errors.append(f"{f.relative_to(tree)}:{e.lineno}: {e.msg}")
            except ValueError as e:  # null bytes
                errors.append(f"{f.relative_to(tree)}: {e}")
    return errors
