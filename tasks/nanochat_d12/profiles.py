"""nanochat-d12's profiles: a 1-GPU proxy for searches on one GPU, and two smoke profiles.

Each is selected explicitly (`--profile NAME`); the search records it and every view shows it,
because no profile's scores compare with the full task's. A profile's training settings go
to the recipe through `AR_TRAIN_ARGS` (appended to the harness's arguments, so they win over
the recipe's defaults), the scorer's through `AR_SCORE_ARGS`, its budget through the phase
environment and the train phase's wall budget.
"""

from __future__ import annotations

import math

from tasks.base import Profile
from tasks.nanochat_d12.budget import D12_TRAINED_TOKENS, READ_PER_TRAINED, SLACK, Budget

# One GPU keeps the global batch (the recipe accumulates gradients 8x), so each step takes about
# 8x as long; a quarter of the horizon (ratio 3: 630 steps of 524,288 tokens) keeps a trial near
# the full task's wall time. Muon's 400-step momentum warm-up and the 40-step LR warm-up stay.
PROXY_BUDGET = Budget(train_s=5400.0, tokens=math.ceil(D12_TRAINED_TOKENS / 4 * READ_PER_TRAINED * (1 + SLACK)),
                      source="proxy-1gpu")
PROXY_1GPU = Profile(
    name="proxy-1gpu", gpus=1,
    env={**PROXY_BUDGET.env(), "AR_TRAIN_ARGS": "--target-param-data-ratio=3"},
    phase_budgets_s={"train": PROXY_BUDGET.train_s},
    description=(
        "One GPU: the same d12 model and global batch (8x gradient accumulation) trained for a quarter of the "
        "compute-optimal horizon (ratio 3, about 330M tokens, so the token budget is a quarter too); CORE over "
        "every example and bpb as in the full task. The horizon is fixed by the profile, so changes to it do not "
        "carry over. Expect CORE well below the full task's and do not compare the two: rank ideas here, "
        "confirm them on 8 GPUs."),
)

# Depth 4 for a few hundred steps: torch.compile, bfloat16, FA3 where the GPU is Hopper (the
# bench asserts the log line there), the checkpoint and the whole scorer on synthetic data.
GPU_SMOKE = Profile(
    name="gpu-smoke", gpus=1,
    env={"AR_TRAIN_ARGS": "--depth=4 --max-seq-len=512 --device-batch-size=8 --total-batch-size=4096 "
                          "--num-iterations=300 --eval-every=100 --eval-tokens=16384",
         "AR_SCORE_ARGS": "--depth=4 --bpb-tokens=65536 --batch-tokens=8192",
         **Budget(train_s=600.0, tokens=50_000_000, source="gpu-smoke").env()},
    phase_budgets_s={"smoke": 600.0, "train": 600.0, "score": 900.0},
    description=(
        "A wiring check on one GPU, not a search: a depth-4 model for 300 steps of 4,096 tokens with "
        "torch.compile, bfloat16 and FA3 where the GPU is Hopper (else PyTorch SDPA), the checkpoint, and the "
        "harness's CORE and bpb. Meant for synthetic data (bench/gpu_smoke_nanochat.py); the scores mean nothing."),
)

# gpu-tasks.md 4.5, the configuration verified on CPU: depth 2, head dim 64, full attention,
# 256-token sequences, 2 x 256 tokens per step; eager (no inductor compile) to keep it quick.
CPU_SMOKE = Profile(
    name="cpu-smoke", gpus=0,
    env={"AR_TRAIN_ARGS": "--device-type=cpu --depth=2 --head-dim=64 --window-pattern=L --max-seq-len=256 "
                          "--device-batch-size=2 --total-batch-size=512 --num-iterations=60 --eval-every=30 "
                          "--eval-tokens=1024",
         "AR_SCORE_ARGS": "--depth=2 --bpb-tokens=4096 --batch-tokens=4096 --batch-rows=16",
         "TORCHDYNAMO_DISABLE": "1",
         **Budget(train_s=300.0, tokens=2_000_000, source="cpu-smoke").env()},
    phase_budgets_s={"smoke": 300.0, "train": 300.0, "score": 300.0},
    description=(
        "A wiring check on a CPU, not a search: the smoke configuration verified upstream on a CPU (depth 2, "
        "head dim 64, full attention, 256-token sequences, 512 tokens a step, 60 steps) in float32 without "
        "torch.compile, then the checkpoint, the token count and the harness's CORE and bpb for real; the "
        "scores mean nothing."),
)
