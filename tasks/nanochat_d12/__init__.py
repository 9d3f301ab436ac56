"""nanochat-d12: NanoChat d12 pretraining under a harness-enforced compute budget, scored by CORE."""
