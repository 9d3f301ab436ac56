"""cifar-airbench96: CIFAR-10 Airbench96 on GPUs (wall time under a 0.96 accuracy gate).

The recipe is upstream's `airbench96_faster.py` with our patch (`patch`), fetched by commit
and built on the user's machine by `autoresearch tasks prepare cifar-airbench96` (`data`);
the project never ships it. Each seed is a cold process on one GPU that trains on the 50,000
public training images and writes `predictions.txt` for the 10,000 test images, whose labels
it never sees. The harness scores those predictions (`scorer/score.py`).

Score: the mean over seeds of the evaluator-measured wall time of each seed's process
(interpreter start, imports, compile, data load, training and TTA all count). A mean
accuracy below 0.96 is `disqualified` with its time still reported; the metrics carry the
mean accuracy with a 95% t-interval over the seeds, so a keep that rides the gate within
noise shows as such. Missing or malformed predictions on any seed are a `crash`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks._common import RecipeTask, existing, mean_std
from tasks._prepare import Plan, Source, prepared_dirs, task_root
from tasks.base import DataDirs, Limits, Measurements, Metric, Phase, Profile, Resources, RunPlan, Verdict
from tasks.cifar_airbench96.data import ENTRYPOINT, TARBALL, UPSTREAM, build
from tasks.cifar_airbench96.patch import PATCHED_SHA256, UPSTREAM_BYTES, UPSTREAM_SHA256, UPSTREAM_URL

FOLDER = Path(__file__).resolve().parent
NAME = "cifar-airbench96"
MIN_ACCURACY = 0.96
SEEDS = 10
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SOURCES = (
    Source(UPSTREAM, url=UPSTREAM_URL, sha256=UPSTREAM_SHA256, size=UPSTREAM_BYTES),
    # Upstream publishes only the size and MD5 of the tarball.
    Source(TARBALL, url=CIFAR_URL, size=170_498_071, md5="c58f30108f718f92721af3b95e74349a"),
)
BUILT_BYTES = 185_000_000  # train.pt 154 MB, test.pt 31 MB, labels and recipe
NOTES = ("CIFAR-10 (Krizhevsky, 2009) comes from its canonical tarball; it has no formal licence and "
         "is widely redistributed for research. The recipe is derived from KellerJordan/cifar10-airbench "
         "(MIT, (c) 2024 Keller Jordan) at a pinned commit; the patched file keeps that notice.")
# The inductor cache of a cold max-autotune compile goes to the scratch dir (the sandbox's /tmp is small).
PHASE_ENV = {"TORCHINDUCTOR_CACHE_DIR": "/trial/.cache/torchinductor"}
# t quantile (two-sided 95%) for 1..30 degrees of freedom; beyond that an expansion in 1/df.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)


def t95(df: int) -> float:
    """The two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a t-interval needs at least two values")
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval95(values: list[float]) -> tuple[float, float] | None:
    """Mean ± t95 × standard error; None for fewer than two values."""
    if len(values) < 2:
        return None
    mean, std = mean_std(values)
    half = t95(len(values) - 1) * std / math.sqrt(len(values))
    return mean - half, mean + half


def _seed_table(scorer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    per_seed = scorer.get("per_seed")
    return per_seed if isinstance(per_seed, dict) else {}


@dataclass(frozen=True)
class CifarAirbench96(RecipeTask):
    """The cifar-airbench96 task (see the module docstring)."""

    sources: tuple[Source, ...] = SOURCES
    root: Path | None = None  # the task root; None: where `tasks prepare` put it

    def root_dir(self) -> Path:
        """Where the task is prepared (sources, public/, hidden/, recipe/)."""
        return Path(self.root) if self.root is not None else task_root(self.name)

    def preparation(self) -> Plan:
        """What `autoresearch tasks prepare cifar-airbench96` fetches and builds."""
        return Plan(sources=self.sources, build=build, download_bytes=sum(s.size or 0 for s in self.sources),
                    built_bytes=BUILT_BYTES, notes=NOTES, version=f"pt1-patch-{PATCHED_SHA256[:12]}")

    def recipe_dir(self) -> Path:
        """The patched recipe, written by the build into the task root."""
        return self.root_dir() / "recipe"

    def prepare_data(self, root: Path) -> DataDirs:
        """The prepared task root's public/ and hidden/ (`root` is unused: the data lives there).

        Raises:
            NotPreparedError: the task is not prepared (the message gives the command).
        """
        return prepared_dirs(self.name, self.preparation(), self.root)

    def hidden_sources(self) -> list[Path]:
        """The whole task root: its downloaded tarball holds the test labels."""
        return existing([self.root_dir()])

    def finalize(self, m: Measurements) -> Verdict:
        """Score = mean measured wall time per seed; gate on mean accuracy, shown with its interval."""
        walls = m.seconds("train", "wall")
        per_seed = _seed_table(m.scorer)
        accs = [float(r.get("accuracy", 0.0)) for r in per_seed.values()]
        metrics = _metrics(walls, per_seed, accs, self.limits.gates["min_accuracy"])
        failure = self._broken(m, walls, per_seed)
        if failure:
            return Verdict(status="crash", metrics=metrics, failure=failure)
        gate, mean = self.limits.gates["min_accuracy"], metrics["accuracy"]
        if mean < gate:
            ci = metrics["accuracy_ci95"]
            within = f" (95% interval {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""
            msg = f"mean accuracy {mean:.4f} < gate {gate} over {len(accs)} seeds{within}"
            return Verdict(status="disqualified", score=metrics["train_s"], metrics=metrics, failure=msg)
        return Verdict(status="valid", score=metrics["train_s"], metrics=metrics)

    def _broken(self, m: Measurements, walls: list[float], per_seed: dict[str, Any]) -> str:
        """A failure line when the seeds' runs or predictions are incomplete, else ''."""
        if len(walls) < m.seeds:
            return f"train phase wall time measured for {len(walls)} of {m.seeds} seeds"
        if not per_seed:
            return "scorer returned no per-seed accuracy"
        if len(per_seed) < m.seeds:
            return f"predictions for {len(per_seed)} of {m.seeds} seeds"
        for seed, r in per_seed.items():
            if r.get("malformed"):
                return f"seed {seed}: predictions.txt {r['malformed']}"
        return ""


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _metrics(walls: list[float], per_seed: dict[str, Any], accs: list[float], gate: float) -> dict[str, Any]:
    """Times and accuracies; an undefined statistic (too few values) is None, never NaN."""
    t_mean, t_std = mean_std(walls)
    a_mean, a_std = mean_std(accs)
    ci = interval95(accs)
    return {
        "train_s": _finite(t_mean), "train_s_std": _finite(t_std), "train_s_per_seed": walls, "clock": "wall",
        "accuracy": _finite(a_mean), "accuracy_std": _finite(a_std), "accuracy_ci95": list(ci) if ci else None,
        "accuracy_per_seed": dict(zip(per_seed, accs)), "n_seeds": len(walls), "min_accuracy": gate,
        # The gate lies inside the interval: this pass (or miss) is within seed noise.
        "gate_within_noise": bool(ci and ci[0] <= gate <= ci[1]),
    }


TASK = CifarAirbench96(
    name=NAME,
    description=(
        "CIFAR-10 Airbench96: the fastest cold-process training run (upstream airbench96_faster.py, "
        f"one GPU per seed) with mean test accuracy >= {MIN_ACCURACY} over {SEEDS} seeds. Score: "
        "evaluator-measured wall seconds per seed process, lower is better. Prepare it first: "
        f"autoresearch tasks prepare {NAME}."
    ),
    folder=FOLDER,
    editable=(ENTRYPOINT,),
    entrypoint=ENTRYPOINT,
    metric=Metric(name="train_s", unit="s", lower_is_better=True, clock="wall"),
    limits=Limits(
        # Generous: without a persistent compile cache each cold process compiles from scratch.
        phase_budgets_s={"smoke": 1200.0, "train": 1200.0, "score": 120.0},
        gates={"min_accuracy": MIN_ACCURACY},
        output_cap_bytes=8 << 20,  # max-autotune logs its benchmark tables
        memory_bytes=16 << 30,  # applies only without GPUs (the CPU smoke fallback)
        scratch_bytes=4 << 30,  # inductor and triton caches of the cold compile
        max_procs=1024,  # inductor's compile workers
        budget_clock="wall",
    ),
    run_plan=RunPlan(
        phases=(
            Phase(name="smoke", argv=("{python}", ENTRYPOINT), kind="smoke", env=PHASE_ENV,
                  overrun_status="preflight_crash"),
            Phase(name="train", argv=("{python}", ENTRYPOINT), kind="main", per_seed=True, env=PHASE_ENV,
                  outputs=("predictions.txt",), overrun_status="train_budget_overrun",
                  gpus_per_process=1),  # the seeds spread over the trial's GPUs, one each
        ),
        seeds=SEEDS,
    ),
    resources=Resources(gpus=8, nproc_per_trial=1),
    calibration_seeds=3,
    profiles=(
        Profile(name="1gpu", gpus=1, seeds=5, description=(
            "One GPU per trial and 5 seeds, run one after another. The score is the same quantity "
            "(mean wall seconds of one cold process on one GPU), but the gate is checked over 5 seeds "
            "instead of 10, so its interval is about 1.7 times as wide: confirm a keep on the full task.")),
        Profile(name="smoke", gpus=1, seeds=2, env={"AIRBENCH_SMOKE": "1"},
                phase_budgets_s={"smoke": 600.0, "train": 600.0}, description=(
            "A wiring check, not a search: every phase is a smoke run (one epoch; without CUDA, CPU "
            "float32 eager with small batches), 2 seeds. Accuracy is far below the gate, so trials "
            "come back disqualified, and the times mean nothing.")),
    ),
)
