"""The cpu-smoke profile's stand-in for FlashAttention-3 (a package only so that wheels ship it)."""
