"""quicktask: minimise a noisy-free bowl over two tunables; each trial sleeps a fixed time.

Used by the client tests and the loop-efficiency benchmark through the registry's dotted
path `tests.client.quicktask.task:TASK` (or `make_task(sleep_s)`). The score is computed by
the scorer from the recipe's output file; the trial's wall time is measured by the runner.
`SLOW` (a second per trial), `STUCK` (half a minute) and `NO_TUNABLES` (a recipe the scripted
proposer finds nothing to change in) are variants for the stop and back-off tests; `OWNED`
declares owners (alpha: X and WIDTH, beta: Y and WIDTH, gamma: none) for the ownership tests;
`CLOCK` records when each run began and ended, to see which runs overlapped.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks._common import RecipeTask, write_data_dirs
from tasks.base import DataDirs, Limits, Measurements, Metric, Phase, Resources, RunPlan, Verdict

FOLDER = Path(__file__).resolve().parent


def _build(tmp: Path) -> None:
    (tmp / "public").mkdir()
    (tmp / "hidden").mkdir()
    (tmp / "public" / "README").write_text("nothing to read\n")
    (tmp / "hidden" / "target.txt").write_text("3.0 -1.0\n")


class QuickTask(RecipeTask):
    def prepare_data(self, root: Path) -> DataDirs:
        return write_data_dirs(root, "quick-v1", _build)

    def hidden_sources(self) -> list[Path]:
        return []

    def finalize(self, m: Measurements) -> Verdict:
        if not m.scorer.get("ok"):
            return Verdict(status="crash", failure=str(m.scorer.get("error", "no result"))[:200])
        loss = float(m.scorer["loss"])
        return Verdict(status="valid", score=loss, metrics={"loss": loss, "wall_s": m.wall_s.get("train", [])})


class NoTunablesTask(QuickTask):
    """The same task, but its recipe declares no tunable constants."""

    def recipe_dir(self) -> Path:
        return FOLDER / "recipe_no_tunables"


class OwnedTask(QuickTask):
    """The same task, but its tunables declare owners among the roster's roles."""

    def recipe_dir(self) -> Path:
        return FOLDER / "recipe_owned"


class ClockTask(QuickTask):
    """The same task, but its recipe also writes when its run began and ended (metrics["stamps"])."""

    def recipe_dir(self) -> Path:
        return FOLDER / "recipe_clock"

    def finalize(self, m: Measurements) -> Verdict:
        v = super().finalize(m)
        return v.model_copy(update={"metrics": {**v.metrics, "stamps": m.scorer.get("stamps", [])}})


def make_task(sleep_s: float = 0.0, name: str = "quicktask", kind: type[QuickTask] = QuickTask) -> QuickTask:
    return kind(
        name=name, description="Minimise (X-3)^2 + (Y+1)^2 + 1 by editing two constants.",
        folder=FOLDER, editable=("train.py",), entrypoint="train.py",
        metric=Metric(name="loss", unit="", lower_is_better=True),
        limits=Limits(phase_budgets_s={"smoke": 20, "train": 20 + sleep_s, "score": 20}),
        run_plan=RunPlan(phases=(
            Phase(name="smoke", argv=("{python}", "train.py"), kind="smoke"),
            Phase(name="train", argv=("{python}", "train.py"), per_seed=True, outputs=("result.txt",),
                  env={"QUICK_SLEEP": str(sleep_s)}),
        ), seeds=1),
        resources=Resources(), calibration_seeds=2,
    )


TASK = make_task(float(os.environ.get("AR_QUICKTASK_SLEEP", "0")))
SLOW = make_task(1.0, name="quicktask-slow")
STUCK = make_task(30.0, name="quicktask-stuck")
NO_TUNABLES = make_task(name="quicktask-no-tunables", kind=NoTunablesTask)
OWNED = make_task(name="quicktask-owned", kind=OwnedTask)
CLOCK = make_task(1.5, name="quicktask-clock", kind=ClockTask)
