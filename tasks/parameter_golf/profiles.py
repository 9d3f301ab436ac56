"""parameter-golf's profiles: a 1-GPU proxy for searches on one GPU, and two smoke profiles.

Both are selected explicitly (`--profile NAME`); the search records the profile and every view
shows it, because neither profile's scores compare with the full task's.
"""

from __future__ import annotations

from tasks.base import Profile

# The full run takes about 4,550 steps on 8 GPUs and warms Muon's momentum over 1,500 of them.
# One GPU keeps the global batch (grad_accum_steps = 8 // world_size), so it takes about 1/8 of
# the steps in the same 600 s; the warm-up is scaled by the same 1/8 to keep its shape.
PROXY_1GPU = Profile(
    name="proxy-1gpu", gpus=1,
    env={"TTT_ENABLED": "0", "SLIDING_WINDOW_ENABLED": "0", "MUON_MOMENTUM_WARMUP_STEPS": "188"},
    description=(
        "One GPU: the same model, batch and 600 s budget, so about 1/8 of the training steps (Muon's momentum "
        "warm-up scaled to match); test-time training and the sliding-window evaluation are off (on one GPU "
        "they would take about 50 and 16 minutes). Score: the harness's plain (non-overlapping 2048-token) "
        "evaluation of the quantized artifact, never self-reported. Expect it well above the full task's "
        "1.08 and do not compare the two: rank ideas here, confirm them on 8 GPUs."),
)

# A small model on 128-256-token sequences: the record's code paths (recurrence, parallel
# residuals, XSA, GPTQ, brotli, sliding eval, score-first TTT) at a size synthetic data can feed.
_SMALL = {
    "NUM_LAYERS": "4", "NUM_KV_HEADS": "2", "XSA_LAST_N": "2", "NUM_LOOPS": "1", "LOOP_START": "1",
    "LOOP_END": "2", "PARALLEL_RESIDUAL_START": "2", "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1",
    "GPTQ_CALIBRATION_BATCHES": "2", "TTT_EPOCHS": "1", "EVAL_STRIDE": "64",
}

GPU_SMOKE = Profile(
    name="gpu-smoke", gpus=1,
    env={**_SMALL, "PYTHONPATH": "/data/shim", "MODEL_DIM": "128", "EMBEDDING_DIM": "128", "NUM_HEADS": "4",
         "TRAIN_SEQ_LEN": "256", "EVAL_SEQ_LEN": "256", "ROPE_TRAIN_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "16384",
         "VAL_BATCH_TOKENS": "16384", "ITERATIONS": "20", "WARMUP_STEPS": "2", "MAX_WALLCLOCK_SECONDS": "60",
         "GPTQ_RESERVE_SECONDS": "1", "TTT_CHUNK_TOKENS": "2048"},
    phase_budgets_s={"smoke": 300.0, "train": 300.0, "eval": 300.0, "score": 900.0},
    description=(
        "A wiring check on one GPU, not a search: the CUDA path with torch.compile and bfloat16, FA3 when it is "
        "installed (else PyTorch attention through the smoke shim), a 4-layer 128-wide model for 20 steps of "
        "16k tokens, sliding eval and TTT on. Meant for synthetic data (bench/gpu_smoke_golf.py); the scores "
        "mean nothing."),
)

CPU_SMOKE = Profile(
    name="cpu-smoke", gpus=0,
    env={
        # The only CPU fallbacks: the patch's AR_DEVICE=cpu path, the stub flash_attn_interface
        # (the prepared data carries it in shim/), and eager mode instead of torch.compile.
        **_SMALL, "AR_DEVICE": "cpu", "PYTHONPATH": "/data/shim", "TORCHDYNAMO_DISABLE": "1",
        "MODEL_DIM": "64", "EMBEDDING_DIM": "64", "NUM_HEADS": "4", "MLP_MULT": "2", "ROPE_DIMS": "8",
        "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "ROPE_TRAIN_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "1024",
        "VAL_BATCH_TOKENS": "8192", "ITERATIONS": "3", "WARMUP_STEPS": "1", "MAX_WALLCLOCK_SECONDS": "0",
        "GPTQ_RESERVE_SECONDS": "0", "TTT_CHUNK_TOKENS": "4096",
    },
    phase_budgets_s={"smoke": 300.0, "train": 300.0, "eval": 300.0, "score": 900.0},
    description=(
        "A wiring check on a CPU, not a search: a 4-layer, 64-wide model (the record's code, with its "
        "recurrence, parallel residuals, GPTQ, brotli and score-first TTT) trains for 3 steps on 128-token "
        "sequences, on the CPU in float32 with a PyTorch attention in place of FlashAttention-3 and no "
        "torch.compile. Every phase and the scorer run for real; the scores mean nothing."),
)
