"""GPU smoke of parameter-golf: its `gpu-smoke` profile end to end on one GPU, synthetic data.

    python bench/gpu_smoke_golf.py [--device 0] [--upstream DIR] [--cpu]

Builds a task root through the real `prepare` from synthetic sources (a SentencePiece BPE
tokenizer with the real 8,192-token vocabulary trained on generated text, two training shards
and a validation shard in the 20240520 format) and the pinned upstream files (`--upstream`,
else `../shared/upstream/parameter-golf/`; checked by sha256, never downloaded). Then it
evaluates the starting recipe with the `gpu-smoke` profile in real sandboxes on one GPU: the
CUDA path with torch.compile and bfloat16, FA3 when installed (else PyTorch attention through
the smoke shim), a 4-layer 128-wide model, 20 steps, GPTQ, brotli, the harness's
re-evaluation in its Landlock-confined worker and the recipe's eval with sliding windows and
TTT. `--cpu` runs the `cpu-smoke` profile instead (a dry run of this script without a GPU).

Prints per phase: status, wall seconds, peak GPU and host memory (MiB); then the trial's
status (`valid` is expected), the harness's and the recipe's numbers, the isolation of the
scorer's workers, what it ran on, and on a failure the summary and the log tail. Exit status
0 when the trial is valid.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._smoke import devices_or_exit, evaluate_starting_recipe, failed, prepared, print_phases, print_ran_on  # noqa: E402
from evaluator_service.models import Outcome  # noqa: E402
from tasks.registry import with_profile  # noqa: E402
from tests.tasks.pg_fixture import prepared_task  # noqa: E402

PHASES = ("smoke", "train", "score")
DEFAULT_UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "parameter-golf"


def phase_rows(out: Outcome) -> list[tuple[str, str, float | None, object, object]]:
    """(phase, status, wall s, peak GPU MiB, peak RSS MiB) per phase; the failed one carries the status."""
    env = out.metrics.get("env") if isinstance(out.metrics.get("env"), dict) else {}
    prefixes = {"smoke": "smoke", "train": "train", "score": "scorer"}
    failed = next((p for p, pre in prefixes.items() if out.failure.startswith(pre)), "")
    rows = []
    for phase in PHASES:
        ran = phase in out.timings
        status = out.status if phase == failed else "ok" if ran else "not run"
        rows.append((phase, status, out.timings.get(phase), env.get("peak_gpu_mib", {}).get(phase),
                     env.get("peak_rss_mib", {}).get(phase)))
    return rows


def report(out: Outcome) -> int:
    print_phases(phase_rows(out))
    m = out.metrics
    print(f"trial: {out.status} in {out.timings.get('total', 0):.1f} s; score {out.score} "
          f"(self-reported: {out.self_reported}); {out.failure}")
    print(f"harness val_bpb {m.get('harness_val_bpb')}, recipe {m.get('reported_label')} {m.get('reported_val_bpb')}, "
          f"recipe eval {m.get('eval_s')} s, artifact {m.get('artifact_bytes')} bytes, workers {m.get('isolation')}")
    print_ran_on(out)
    return 1 if failed(out) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", help="GPU id (default: the first one found)")
    ap.add_argument("--upstream", type=Path, default=DEFAULT_UPSTREAM, help="folder of the pinned upstream files")
    ap.add_argument("--cpu", action="store_true", help="the cpu-smoke profile instead (no GPU)")
    args = ap.parse_args()
    devices = devices_or_exit(args.device, args.cpu)
    if not (args.upstream / "LICENSE").is_file():
        sys.exit(f"{args.upstream} holds no pinned upstream files: pass --upstream DIR (a copy of "
                 "openai/parameter-golf at 857de475 with the record folder, LICENSE and THIRD_PARTY_NOTICES.md)")
    profile = "cpu-smoke" if args.cpu else "gpu-smoke"
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-golf-") as tmp:
        t0 = time.monotonic()
        task = with_profile(prepared_task(Path(tmp) / "root", upstream_dir=args.upstream), profile)
        prepared(t0, devices)
        out = evaluate_starting_recipe(task, profile, devices, Path(tmp))
    return report(out)


if __name__ == "__main__":
    sys.exit(main())
