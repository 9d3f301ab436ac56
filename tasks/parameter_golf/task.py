"""parameter-golf: OpenAI's Parameter Golf on 8 GPUs, from the 1.0810 record (the paper's baseline).

Lowest validation bits per byte on FineWeb (SP8192) of a model whose artifact, the code plus
the compressed weights, fits 16,000,000 bytes, trained in 600 s and evaluated in 600 s. The
recipe is the record's `train_gpt.py`, fetched by commit, unpacked and patched on the user's
machine by `autoresearch tasks prepare parameter-golf` (`upstream`, `patch`, `layout`).

A trial: a smoke run (few steps, the real model, a round trip through the artifact), then the
train run under torchrun on the leased GPUs, which writes `artifact/` (the packed
`train_gpt.py` and `final_model.int6.ptz`). The evaluator measures the artifact's files.
The scorer (scorer/, in its own sandbox with the validation shard) re-evaluates the artifact
with the harness's own sliding-window loss and byte tables, then runs the recipe's own eval
(with its score-first TTT) and accepts that score, marked self-reported, only if it passes the
checks (scorer/score.py says which). Limits the harness enforces: the train phase is killed at
600 s + TRAIN_ALLOWANCE_S (start-up, compile, warm-up, quantization and compression, which the
rules do not count), and its wall time less the smoke run's (the same start-up and compile
with a few steps) may exceed 600 s by TRAIN_SLACK_S at most; the recipe's eval run is killed at
600 s; the artifact cap is checked on the files by the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks._common import RecipeTask, existing
from tasks._prepare import Plan, Source, require_prepared, task_root
from tasks.base import (
    DataDirs, Limits, Measurements, Metric, Phase, PreflightResult, Profile, Resources, RunPlan, Verdict,
)
from tasks.parameter_golf import layout, legality, upstream
from tasks.parameter_golf.patch import PATCHED_SHA256
from tasks.parameter_golf.profiles import CPU_SMOKE, GPU_SMOKE, PROXY_1GPU

FOLDER = Path(__file__).resolve().parent
NAME = "parameter-golf"
ENTRYPOINT = "train_gpt.py"
ARTIFACT_CAP = 16_000_000
TRAIN_RULE_S = 600.0
TRAIN_ALLOWANCE_S = 300.0
TRAIN_SLACK_S = 60.0
EVAL_BUDGET_S = 600.0
REEVAL_BUDGET_S = 900.0
DISQUALIFYING = {"acausal", "inconsistent", "malformed", "ratio", "gain"}
BUILT_BYTES = 400_000_000  # the shortened last shard, the holdout, tables; the other shards are hard links
_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "/trial/.cache/torchinductor", "TRITON_CACHE_DIR": "/trial/.cache/triton"}
NOTES = (
    "Recipe: the 1.0810 record's train_gpt.py from openai/parameter-golf (MIT, (c) 2026 OpenAI; parts from "
    "modded-nanogpt, MIT, (c) 2024 Keller Jordan) at a pinned commit, checked by sha256 packed and unpacked; "
    "the patched file keeps both notices. Data: FineWeb (ODC-By) tokenised with SP8192, from the Hugging Face "
    f"dataset {upstream.HF_REPO}: {upstream.TRAIN_SHARDS} train shards (not the downloader's 80), the "
    "validation shard and the tokenizer. Each Hub file is verified by the sha256 recorded in "
    "tasks/parameter_golf/upstream.py (HUB_SHA256) where there is one, else by the checksum the Hub publishes "
    "for it at the commit the dataset's revision names on the first prepare; that commit and every checksum "
    "go into the manifest, so later runs use exactly those bytes. The build also checks its byte tables "
    "against the record's val_bpb/val_loss ratio (0.3871312).")


def _sources(spec: layout.DataSpec) -> tuple[Source, ...]:
    dests = layout.source_dests(spec)
    out = [Source(dest, url=upstream.upstream_url(name), sha256=upstream.UPSTREAM_SHA256[name])
           for dest, name in dests.items() if name in upstream.UPSTREAM_SHA256]
    out += [Source(dest, hf_repo=upstream.HF_REPO, hf_file=upstream.hf_path(name), hf_revision=upstream.HF_REVISION,
                   sha256=upstream.HUB_SHA256.get(name, ""), hub_checksum=name not in upstream.HUB_SHA256)
            for dest, name in dests.items() if name not in upstream.UPSTREAM_SHA256]
    return tuple(out)


@dataclass(frozen=True)
class ParameterGolf(RecipeTask):
    """The parameter-golf task (see the module docstring)."""

    spec: layout.DataSpec = layout.FULL
    sources: tuple[Source, ...] | None = None  # None: the pinned ones for `spec`
    root: Path | None = None  # the task root; None: where `tasks prepare` put it

    def root_dir(self) -> Path:
        return Path(self.root) if self.root is not None else task_root(self.name)

    def preparation(self) -> Plan:
        """What `autoresearch tasks prepare parameter-golf` fetches and builds."""
        sources = self.sources if self.sources is not None else _sources(self.spec)
        return Plan(sources=sources, build=self.build, download_bytes=upstream.download_bytes(self.spec),
                    built_bytes=BUILT_BYTES if self.spec == layout.FULL else 0, notes=NOTES,
                    version=f"patch-{PATCHED_SHA256[:12]}-{layout.VERSION}")

    def build(self, root: Path) -> None:
        """The plan's build: recipe/, public/ and hidden/ from the verified sources (see `layout`)."""
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
        """The task root: its raw downloads hold the validation shard."""
        return existing([self.root_dir()])

    def preflight(self, tree: Path) -> PreflightResult:
        """Syntax, then the static legality checks (`legality`): a violation is `disqualified`."""
        pre = super().preflight(tree)
        entry = Path(tree) / ENTRYPOINT
        if not pre.ok or not entry.is_file():
            return pre
        found = legality.problems(entry.read_text(errors="replace"))
        if found:
            return PreflightResult(ok=False, status="disqualified", message="; ".join(found)[:1000],
                                   checks={**pre.checks, "legality": found})
        return pre.model_copy(update={"checks": {**pre.checks, "legality": []}})

    def trial_env(self) -> dict[str, str]:
        """The environment of the train phase (the profile's included), which the scorer reproduces."""
        return dict(next(p for p in self.run_plan.phases if p.name == "train").env)

    def scorer_argv(self) -> tuple[str, ...]:
        env, budgets = self.trial_env(), self.limits.phase_budgets_s
        argv = ["{python}", "{scorer_dir}/score.py", f"--eval-budget={budgets['eval']:g}",
                f"--reeval-budget={budgets['score'] - budgets['eval'] - 60:g}"]
        if env.get("SLIDING_WINDOW_ENABLED") == "0":
            argv.append(f"--stride={1 << 20}")  # clipped to eval_seq_len: plain, non-overlapping windows
        if env.get("TTT_ENABLED") == "0" and env.get("SLIDING_WINDOW_ENABLED") == "0":
            argv.append("--recipe-eval=0")  # nothing the recipe could add to the harness's own number
        return (*argv, *(f"--env={k}={v}" for k, v in sorted(env.items())))

    def finalize(self, m: Measurements) -> Verdict:
        """Score = the scorer's val_bpb (see the module docstring for where it comes from)."""
        s = m.scorer or {}
        metrics = _metrics(m, s, self.limits.artifact_cap_bytes)
        status, failure = self._classify(m, s, metrics)
        score = float(s["val_bpb"]) if status == "valid" else None
        return Verdict(status=status, score=score, metrics=metrics, failure=failure)

    def _classify(self, m: Measurements, s: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, str]:
        cap = self.limits.artifact_cap_bytes
        if s.get("eval_overrun") or s.get("invalid_kind") == "eval_overrun":
            return "eval_budget_overrun", s.get("reason", "the recipe's eval run exceeded its budget")
        loop_s = metrics.get("train_minus_smoke_s")
        limit = float(self.trial_env().get("MAX_WALLCLOCK_SECONDS", "0")) + TRAIN_SLACK_S
        if loop_s is not None and limit > TRAIN_SLACK_S and loop_s > limit:
            return "train_budget_overrun", (f"train ran {loop_s:.0f} s longer than the smoke run (same start-up and "
                                            f"compile), over the {limit:.0f} s the training may take")
        if m.artifact_bytes is None:
            return "crash", "the train phase wrote no artifact/"
        if cap is not None and m.artifact_bytes > cap:
            return "size_blocked", f"artifact {m.artifact_bytes:,} bytes > cap {cap:,} bytes"
        if "valid" not in s:
            return "crash", "the scorer returned no result"
        if not s["valid"]:
            kind = s.get("invalid_kind", "?")
            return ("disqualified" if kind in DISQUALIFYING else "crash"), f"{kind}: {s.get('reason', '')}"
        return "valid", ""


def _metrics(m: Measurements, s: dict[str, Any], cap: int | None) -> dict[str, Any]:
    harness, reported = s.get("harness") or {}, s.get("reported") or {}
    train_s = max(m.wall_s.get("train", []), default=None)
    smoke_s = max(m.wall_s.get("smoke", []), default=None)
    return {
        "val_bpb": s.get("val_bpb"), "self_reported": bool(s.get("self_reported")),
        "harness_val_bpb": harness.get("val_bpb"), "harness_val_loss": harness.get("val_loss"),
        "reported_label": reported.get("label"), "reported_val_bpb": reported.get("val_bpb"),
        "bpb_per_loss": harness.get("bpb_per_loss"), "tokens": harness.get("tokens"),
        "probes": harness.get("probes"), "challenges": harness.get("challenges"),
        "isolation": s.get("isolation"), "artifact_bytes": m.artifact_bytes, "artifact_cap_bytes": cap,
        "train_s": train_s, "smoke_s": smoke_s, "eval_s": s.get("eval_s"),
        "train_minus_smoke_s": None if train_s is None or smoke_s is None else train_s - smoke_s,
        "score_s": max(m.wall_s.get("score", []), default=None),
    }


_HARNESS_ENV = {**_CACHES, "MAX_WALLCLOCK_SECONDS": f"{TRAIN_RULE_S:g}"}

TASK = ParameterGolf(
    name=NAME,
    description=(
        "OpenAI's Parameter Golf from the 1.0810 record (the paper's baseline): lowest FineWeb validation bits "
        f"per byte with an artifact (code + compressed model) of at most {ARTIFACT_CAP:,} bytes, 600 s of "
        "training and 600 s of evaluation on 8 GPUs. Score: val_bpb, re-evaluated by the harness; the recipe's "
        f"TTT score counts only when it passes the harness's checks. Prepare it first: autoresearch tasks prepare {NAME}."
    ),
    folder=FOLDER,
    editable=(ENTRYPOINT,),
    entrypoint=ENTRYPOINT,
    metric=Metric(name="val_bpb", unit="bpb", lower_is_better=True),
    limits=Limits(
        phase_budgets_s={"smoke": 600.0, "train": TRAIN_RULE_S + TRAIN_ALLOWANCE_S, "eval": EVAL_BUDGET_S,
                         "score": EVAL_BUDGET_S + REEVAL_BUDGET_S + 60.0},
        artifact_cap_bytes=ARTIFACT_CAP,
        artifact_max_entries=8,
        output_cap_bytes=4 << 20,
        memory_bytes=16 << 30,  # applies only without GPUs (the cpu-smoke profile)
        scratch_bytes=8 << 30,  # the 135 MB raw checkpoint, the artifact, inductor and triton caches
        max_procs=4096,  # eight ranks, their threads and inductor's compile workers
        budget_clock="wall",
    ),
    run_plan=RunPlan(
        phases=(
            Phase(name="smoke", argv=("{python}", ENTRYPOINT), kind="smoke", torchrun=True, env=dict(_CACHES),
                  overrun_status="preflight_crash"),
            Phase(name="train", argv=("{python}", ENTRYPOINT), kind="main", torchrun=True, env=dict(_HARNESS_ENV),
                  outputs=("artifact",), overrun_status="train_budget_overrun"),
        ),
        seeds=1,
    ),
    # torchrun starts one worker per leased GPU; nproc_per_trial is the count without GPUs (cpu-smoke).
    resources=Resources(gpus=8, nproc_per_trial=1),
    calibration_seeds=3,
    profiles=(PROXY_1GPU, GPU_SMOKE, CPU_SMOKE),
)
