"""nanochat-d12: NanoChat's depth-12 base model, pretrained under a compute budget, scored by CORE.

The recipe is the whole nanochat tree at the paper's commit (model, optimiser, data loader,
`scripts/base_train.py` and the rest), fetched file by file, checked by sha256 and patched on
the user's machine by `autoresearch tasks prepare nanochat-d12` (`upstream`, `patch`,
`layout`). A trial: a smoke run (the real model for a few steps, checkpoint included), then
the train run under torchrun on the leased GPUs, which writes `checkpoint/` (the model, its
metadata, the loader's ledger). The scorer (scorer/, its own sandbox with the hidden data)
computes CORE over every example of the 22 tasks and the validation bpb on the fixed
validation shard with the trial's model in a Landlock-confined worker, and counts the tokens
the loader read. Score: CORE, higher is better. The compute budget (`budget`): the train phase
is killed at its wall budget, and reading more training tokens than the token budget is
`train_budget_overrun` however fast it ran; a calibrated budget replaces the defaults
(`with_budget`, `budget.calibrate`): a search records it from its calibration runs
(`calibration_env`) and evaluates every trial under it (`with_env`).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks._common import RecipeTask, existing
from tasks._prepare import Plan, Source, require_prepared, task_root
from tasks.base import (
    DataDirs, Limits, Measurements, Metric, Phase, PreflightResult, Resources, RunPlan, Verdict, syntax_errors,
)
from tasks.nanochat_d12 import budget, layout, upstream
from tasks.nanochat_d12.budget import Budget
from tasks.nanochat_d12.patch import PATCHED_DIGEST
from tasks.nanochat_d12.profiles import CPU_SMOKE, GPU_SMOKE, PROXY_1GPU

FOLDER = Path(__file__).resolve().parent
NAME = "nanochat-d12"
ENTRYPOINT = "scripts/base_train.py"
DEPTH = 12
DISQUALIFYING = {"acausal", "inconsistent", "malformed", "depth", "ledger"}
BUILT_BYTES = 1_000_000_000  # tokenizer, the unzipped bundle, row-group counts; the shards are hard links
NOTES = (
    "Data: ClimbMix (karpathy/climbmix-400b-shuffle on the Hugging Face Hub) is licensed CC-BY-NC-4.0, for "
    "NON-COMMERCIAL research and development only; do not use this task's data or models commercially. The CORE "
    "bundle's tasks come from public datasets under their own licences. Recipe: karpathy/nanochat (MIT, (c) 2025 "
    "Andrej Karpathy) at the paper's commit, every file checked by sha256; the patched files keep the notice. "
    "Shards are verified by the checksum the Hub publishes at the commit the dataset's revision names on the first "
    "prepare; eval_bundle.zip (S3 publishes no checksum) by the sha256 recorded at the first prepare; the "
    "tokenizer is trained once here and checksummed; the FA3 kernel is cached for offline use when the `kernels` "
    "package is installed.")
# "--" ends torchrun's options: it would take --run=dummy for an abbreviation of its own --run-path
_ARGV = ("{python}", "-m", "scripts.base_train", "--", "--run=dummy", f"--depth={DEPTH}", "--model-tag=d12")
_PHASE_ENV = {
    "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": "/data/hf/hub", "HF_KERNELS_CACHE": "/data/hf/hub",
    "HF_HOME": "/trial/.cache/huggingface", "NANOCHAT_VAL_FILE": f"/data/holdout/{layout.HOLDOUT_NAME}",
    "AR_CHECKPOINT_DIR": "checkpoint", "AR_LEDGER": "checkpoint/ledger",
    "TORCHINDUCTOR_CACHE_DIR": "/trial/.cache/torchinductor", "TRITON_CACHE_DIR": "/trial/.cache/triton",
}


def pinned_sources(spec: layout.DataSpec, github: str = "https://raw.githubusercontent.com",
                   bundle_url: str = upstream.EVAL_BUNDLE_URL) -> tuple[Source, ...]:
    """The sources of `spec`: the tree from `github` at the pinned commit, the shards from the Hub
    (its endpoint is prepare's), the bundle from `bundle_url`."""
    out = []
    for dest, name in layout.source_dests(spec).items():
        if name in upstream.TREE_SHA256:
            out.append(Source(dest, url=upstream.upstream_url(name, github), sha256=upstream.TREE_SHA256[name]))
        elif name == "eval_bundle.zip":
            out.append(Source(dest, url=bundle_url, first_use=True))
        else:
            out.append(Source(dest, hf_repo=upstream.HF_DATASET, hf_file=name, hf_revision=upstream.HF_REVISION,
                              hub_checksum=True))
    return tuple(out)


@dataclass(frozen=True)
class NanochatD12(RecipeTask):
    """The nanochat-d12 task (see the module docstring)."""

    spec: layout.DataSpec = layout.FULL
    sources: tuple[Source, ...] | None = None  # None: the pinned ones for `spec`
    root: Path | None = None  # the task root; None: where `tasks prepare` put it

    def root_dir(self) -> Path:
        return Path(self.root) if self.root is not None else task_root(self.name)

    def preparation(self) -> Plan:
        """What `autoresearch tasks prepare nanochat-d12` fetches and builds."""
        sources = self.sources if self.sources is not None else pinned_sources(self.spec)
        n = self.spec.train_shards + 2
        return Plan(sources=sources, build=self.build, notes=NOTES,
                    download_bytes=n * upstream.SHARD_BYTES + upstream.EVAL_BUNDLE_BYTES + upstream.TREE_BYTES,
                    built_bytes=BUILT_BYTES if self.spec == layout.FULL else 0,
                    version=f"patch-{PATCHED_DIGEST[:12]}-{layout.VERSION}")

    def build(self, root: Path) -> None:
        """The plan's build: recipe/, public/, hidden/ and the tokenizer (see `layout`)."""
        layout.build_with(Path(root), self.spec)

    def recipe_dir(self) -> Path:
        return self.root_dir() / "recipe"

    def prepare_data(self, root: Path) -> DataDirs:
        """The prepared task root's public/ and hidden/ (`root` is unused: the data lives there).

        Raises:
            NotPreparedError: the task is not prepared (the message gives the command).
        """
        base = require_prepared(self.name, self.preparation(), root=self.root)
        return DataDirs(public=base / "public", hidden=base / "hidden")

    def hidden_sources(self) -> list[Path]:
        """The task root: its raw downloads hold the validation shard and the CORE bundle."""
        return existing([self.root_dir()])

    def preflight(self, tree: Path) -> PreflightResult:
        """Syntax of every .py of the tree (not its LICENSE or uv.lock), and the entry point and the
        checkpoint loader present."""
        tree = Path(tree)
        code = tuple(e for e in self.editable if (tree / e).is_dir() or e.endswith(".py"))
        errors = syntax_errors(tree, code)
        if errors:
            return PreflightResult(ok=False, status="preflight_crash", message="; ".join(errors[:5]),
                                   checks={"syntax": errors})
        missing = [p for p in (ENTRYPOINT, "nanochat/checkpoint_manager.py", "nanochat/gpt.py") if not (tree / p).is_file()]
        if missing:
            return PreflightResult(ok=False, status="preflight_crash", checks={"syntax": []},
                                   message=f"the recipe must keep {', '.join(missing)} (the harness runs and loads them)")
        return PreflightResult(ok=True, checks={"syntax": []})

    def trial_env(self) -> dict[str, str]:
        """The train phase's environment (the profile's and the budget's included)."""
        return dict(next(p for p in self.run_plan.phases if p.name == "train").env)

    def trial_budget(self) -> Budget:
        """The budget trials run under: the train phase's wall budget and the token budget."""
        env = self.trial_env()
        return Budget(train_s=float(self.limits.phase_budgets_s["train"]), tokens=int(env[budget.ENV_TOKENS]),
                      source=env.get("AR_BUDGET_SOURCE", self.profile or "default"))

    def with_budget(self, b: Budget) -> NanochatD12:
        """This task under budget `b` (e.g. `budget.calibrate` of the baseline's runs): the train
        phase's wall budget and every trial phase's budget environment."""
        env = {**b.env(), "AR_BUDGET_SOURCE": b.source}
        phases = tuple(p.model_copy(update={"env": {**p.env, **env}}) for p in self.run_plan.phases)
        limits = self.limits.model_copy(update={"phase_budgets_s": {**self.limits.phase_budgets_s, "train": b.train_s}})
        return dataclasses.replace(self, run_plan=self.run_plan.model_copy(update={"phases": phases}), limits=limits)

    def calibration_env(self, runs: list[dict[str, Any]]) -> dict[str, str]:
        """What a search records from its calibration runs' metrics: the calibrated budget's environment.

        Raises:
            ValueError: no run measured its train time and tokens read.
        """
        b = budget.calibrate(runs)
        return {**b.env(), "AR_BUDGET_SOURCE": b.source}

    def with_env(self, env: dict[str, str]) -> NanochatD12:
        """This task under a recorded environment (`calibration_env`'s): the budget it names."""
        b = self.trial_budget()
        return self.with_budget(Budget(train_s=float(env.get(budget.ENV_TRAIN_S, b.train_s)),
                                       tokens=int(env.get(budget.ENV_TOKENS, b.tokens)),
                                       source=env.get("AR_BUDGET_SOURCE", b.source)))

    def scorer_argv(self) -> tuple[str, ...]:
        env = self.trial_env()
        extra = shlex.split(env.get("AR_SCORE_ARGS", ""))
        return ("{python}", "{scorer_dir}/score.py", f"--depth={DEPTH}", *extra,
                *(f"--env={k}={v}" for k, v in sorted(env.items())))

    def finalize(self, m: Measurements) -> Verdict:
        """Score = the harness's CORE; the budget and the scorer's checks decide the status."""
        s = m.scorer or {}
        metrics = _metrics(m, s, self.trial_budget())
        status, failure = self._classify(s, metrics)
        return Verdict(status=status, score=float(s["core"]) if status == "valid" else None, metrics=metrics,
                       failure=failure)

    def _classify(self, s: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, str]:
        if "valid" not in s:
            return "crash", "the scorer returned no result"
        if not s["valid"]:
            kind = s.get("invalid_kind", "?")
            return ("disqualified" if kind in DISQUALIFYING else "crash"), f"{kind}: {s.get('reason', '')}"
        why = budget.over(s.get("tokens_read"), metrics["token_budget"])
        if why:
            return "train_budget_overrun", why
        train_s, limit = metrics["train_s"], metrics["train_budget_s"]
        if train_s is not None and train_s > limit:  # the evaluator kills at the budget; this is its backstop
            return "train_budget_overrun", f"the train phase ran {train_s:.0f} s, over its {limit:.0f} s budget"
        return "valid", ""


def _metrics(m: Measurements, s: dict[str, Any], b: Budget) -> dict[str, Any]:
    keys = ("core", "val_bpb", "centered", "accuracy", "tokens_read", "tokens_trained_claim", "row_groups_read",
            "epochs", "n_layer", "params", "attention", "isolation", "probes", "challenges", "bpb_targets",
            "core_s", "load_s")
    return {**{k: s.get(k) for k in keys}, "train_s": max(m.wall_s.get("train", []), default=None),
            "smoke_s": max(m.wall_s.get("smoke", []), default=None),
            "score_s": max(m.wall_s.get("score", []), default=None),
            "train_budget_s": b.train_s, "token_budget": b.tokens, "budget_source": b.source}


TASK = NanochatD12(
    name=NAME,
    description=(
        "NanoChat's depth-12 base model (the paper's NanoChat-D12), pretrained on ClimbMix under a compute budget "
        "the harness enforces: the train phase's wall time (calibrated on your GPUs: the baseline's plus 10 %) and "
        "the training tokens the loader reads (counted by the harness). Score: CORE over every example of its 22 "
        "tasks, computed by the harness from the checkpoint (higher is better); validation bpb and training time "
        "are recorded beside it. 8 GPUs (proxy-1gpu for one). ClimbMix is non-commercial (CC-BY-NC-4.0). Prepare it "
        f"first: autoresearch tasks prepare {NAME}."),
    folder=FOLDER,
    editable=tuple(sorted({p.split("/", 1)[0] for p in upstream.TREE_SHA256})),
    entrypoint=ENTRYPOINT,
    metric=Metric(name="core", unit="CORE", lower_is_better=False),
    limits=Limits(
        phase_budgets_s={"smoke": 900.0, "train": budget.DEFAULT.train_s, "score": 1800.0},
        output_cap_bytes=4 << 20,
        memory_bytes=32 << 30,  # applies only without GPUs (the cpu-smoke profile)
        scratch_bytes=16 << 30,  # the fp32 checkpoint (1.2 GB), inductor and triton caches
        max_procs=4096,  # eight ranks, their loader threads and inductor's compile workers
        budget_clock="wall",
    ),
    run_plan=RunPlan(
        phases=(
            Phase(name="smoke", argv=_ARGV, kind="smoke", torchrun=True, env={**_PHASE_ENV, **budget.DEFAULT.env()},
                  overrun_status="preflight_crash"),
            Phase(name="train", argv=_ARGV, kind="main", torchrun=True, env={**_PHASE_ENV, **budget.DEFAULT.env()},
                  outputs=("checkpoint", "nanochat"), overrun_status="train_budget_overrun"),
        ),
        seeds=1,
    ),
    # torchrun starts one worker per leased GPU; nproc_per_trial is the count without GPUs (cpu-smoke).
    resources=Resources(gpus=8, nproc_per_trial=1),
    calibration_seeds=3,
    profiles=(PROXY_1GPU, GPU_SMOKE, CPU_SMOKE),
)
