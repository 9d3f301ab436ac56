"""parameter-golf's profiles: a 1-GPU proxy for searches on one GPU, and a CPU smoke for tests.

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

CPU_SMOKE = Profile(
    name="cpu-smoke", gpus=0,
    env={
        # The only CPU fallbacks: the patch's AR_DEVICE=cpu path, the stub flash_attn_interface
        # (the prepared data carries it in shim/), and eager mode instead of torch.compile.
        "AR_DEVICE": "cpu", "PYTHONPATH": "/data/shim", "TORCHDYNAMO_DISABLE": "1",
        "NUM_LAYERS": "4", "MODEL_DIM": "64", "EMBEDDING_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
        "MLP_MULT": "2", "XSA_LAST_N": "2", "NUM_LOOPS": "1", "LOOP_START": "1", "LOOP_END": "2",
        "PARALLEL_RESIDUAL_START": "2", "ROPE_DIMS": "8", "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128",
        "ROPE_TRAIN_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "1024", "VAL_BATCH_TOKENS": "8192",
        "ITERATIONS": "3", "WARMUP_STEPS": "1", "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
        "TRAIN_LOG_EVERY": "1", "GPTQ_CALIBRATION_BATCHES": "2", "GPTQ_RESERVE_SECONDS": "0",
        "TTT_CHUNK_TOKENS": "4096", "TTT_EPOCHS": "1", "EVAL_STRIDE": "64",
    },
    phase_budgets_s={"smoke": 300.0, "train": 300.0, "eval": 300.0, "score": 900.0},
    description=(
        "A wiring check on a CPU, not a search: a 4-layer, 64-wide model (the record's code, with its "
        "recurrence, parallel residuals, GPTQ, brotli and score-first TTT) trains for 3 steps on 128-token "
        "sequences, on the CPU in float32 with a PyTorch attention in place of FlashAttention-3 and no "
        "torch.compile. Every phase and the scorer run for real; the scores mean nothing."),
)
