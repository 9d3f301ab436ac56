"""GPU smoke of nanochat-d12: its `gpu-smoke` profile end to end on one GPU, synthetic data.

    python bench/gpu_smoke_nanochat.py [--device 0] [--upstream DIR] [--cpu] [--allow-sdpa]

Builds a task root through the real `prepare` from synthetic sources (ClimbMix-like parquet
shards, a three-task CORE bundle, the rustbpe tokenizer trained on them by the recipe's own
`tok_train.py`) and the pinned nanochat tree (`--upstream`, else `../shared/upstream/nanochat/`;
checked by sha256, never downloaded). Then it evaluates the starting recipe with the
`gpu-smoke` profile in real sandboxes on one GPU: a depth-4 model for 300 steps with
torch.compile and bfloat16, the checkpoint, the harness's CORE and bpb in its Landlock-confined
worker, the tokens read. `--cpu` runs the `cpu-smoke` profile instead (a dry run without a GPU).

FA3 falls back to SDPA silently upstream, so on a Hopper GPU this exits 1 unless the trained
checkpoint says FA3 ran (the patch records the attention path in its metadata, from the same
flag that prints "Using Flash Attention 3"); the kernel must have been staged by `tasks
prepare` (the `gpu` extra and the network), and the reason it was not is printed.
`--allow-sdpa` accepts SDPA there. Prints per phase: status, wall seconds, peak GPU and host
memory (MiB); then the trial's status (`valid` is expected), CORE, bpb, tokens, attention.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._smoke import devices_or_exit, evaluate_starting_recipe, failed, prepared, print_phases, print_ran_on  # noqa: E402
from bench.gpu_smoke_golf import phase_rows  # noqa: E402
from evaluator_service.models import Outcome  # noqa: E402
from tasks.registry import with_profile  # noqa: E402
from tests.tasks.nc_fixture import prepared_task  # noqa: E402

DEFAULT_UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "nanochat"


def hopper(device: str | None) -> bool:
    """Whether the GPU is compute capability 9.x (FA3's kernels are built for it only)."""
    try:
        import torch

        return torch.cuda.is_available() and torch.cuda.get_device_capability(int(device or 0))[0] == 9
    except (RuntimeError, ValueError):
        return False


def report(out: Outcome, fa3_status: dict, want_fa3: bool) -> int:
    print_phases(phase_rows(out))
    m = out.metrics
    print(f"trial: {out.status} in {out.timings.get('total', 0):.1f} s; CORE {out.score}; {out.failure}")
    print(f"val_bpb {m.get('val_bpb')}, tokens read {m.get('tokens_read')} (budget {m.get('token_budget')}), "
          f"attention {m.get('attention')}, FA3 staged: {fa3_status}, workers {m.get('isolation')}")
    print_ran_on(out)
    if failed(out):
        return 1
    if want_fa3 and m.get("attention") != "fa3":
        print(f"FAIL: a Hopper GPU trained with {m.get('attention')!r}, not FA3 ({fa3_status.get('why', '')})")
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", help="GPU id (default: the first one found)")
    ap.add_argument("--upstream", type=Path, default=DEFAULT_UPSTREAM, help="folder of the pinned nanochat tree")
    ap.add_argument("--cpu", action="store_true", help="the cpu-smoke profile instead (no GPU)")
    ap.add_argument("--allow-sdpa", action="store_true", help="accept SDPA attention on a Hopper GPU")
    args = ap.parse_args()
    devices = devices_or_exit(args.device, args.cpu)
    if not (args.upstream / "scripts" / "base_train.py").is_file():
        sys.exit(f"{args.upstream} holds no nanochat tree: pass --upstream DIR (karpathy/nanochat at 0aaca568)")
    profile = "cpu-smoke" if args.cpu else "gpu-smoke"
    want_fa3 = not args.cpu and not args.allow_sdpa and hopper(devices[0] if devices else None)
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-nanochat-") as tmp:
        t0 = time.monotonic()
        task = with_profile(prepared_task(Path(tmp) / "root", upstream_dir=args.upstream, fa3=not args.cpu), profile)
        fa3_status = json.loads((Path(tmp) / "root" / "public" / "fa3.json").read_text())
        prepared(t0, devices)
        out = evaluate_starting_recipe(task, profile, devices, Path(tmp))
    return report(out, fa3_status, want_fa3)


if __name__ == "__main__":
    sys.exit(main())
