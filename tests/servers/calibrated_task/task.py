"""calibrated: quicktask with a train budget measured by calibration (a dotted-path test task).

It declares the optional pair of a task whose budget is measured on the user's machine, as
nanochat-d12 does: `calibration_env(runs)` derives a train budget from the calibration runs'
measured train time (and counts the runs it was given), `with_env(env)` applies it to the
train phase's wall budget and to every phase's environment. The recipe writes the budget its
phase saw, the scorer passes it on, and `finalize` adds the budget of the task object that
evaluated the trial: a row shows what the sandbox saw and which task ran it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tasks.base import Measurements, Verdict
from tests.client.quicktask.task import QuickTask, make_task

HERE = Path(__file__).resolve().parent
ENV_TRAIN_S = "AR_CAL_TRAIN_S"
ENV_RUNS = "AR_CAL_RUNS"
SLACK_S = 30.0  # roomy: a loaded test machine must not turn the baseline into an overrun


class CalibratedTask(QuickTask):
    def recipe_dir(self) -> Path:
        return HERE / "recipe"

    def scorer_dir(self) -> Path:
        return HERE / "scorer"

    def calibration_env(self, runs: list[dict[str, Any]]) -> dict[str, str]:
        walls = [max(r["wall_s"]) for r in runs if r.get("wall_s")]
        if not walls:
            raise ValueError("no calibration run measured its train time")
        return {ENV_TRAIN_S: f"{max(walls) + SLACK_S:.3f}", ENV_RUNS: str(len(runs))}

    def with_env(self, env: dict[str, str]) -> CalibratedTask:
        phases = tuple(p.model_copy(update={"env": {**p.env, **env}}) for p in self.run_plan.phases)
        budgets = {**self.limits.phase_budgets_s, "train": float(env[ENV_TRAIN_S])}
        return dataclasses.replace(self, run_plan=self.run_plan.model_copy(update={"phases": phases}),
                                   limits=self.limits.model_copy(update={"phase_budgets_s": budgets}))

    def finalize(self, m: Measurements) -> Verdict:
        v = super().finalize(m)
        if v.status != "valid":
            return v
        env = next(p for p in self.run_plan.phases if p.name == "train").env
        return v.model_copy(update={"metrics": {
            **v.metrics, "seen": m.scorer["seen"], "train_budget_s": self.limits.phase_budgets_s["train"],
            "calibrated_runs": env.get(ENV_RUNS, "")}})


TASK = make_task(name="calibrated", kind=CalibratedTask)
