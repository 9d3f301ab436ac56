"""A stand-in for FlashAttention-3's `flash_attn_interface`, for the cpu-smoke profile only.

The profile puts the folder holding this file first on PYTHONPATH (the prepared data carries
a copy at /data/shim), so the record's `from flash_attn_interface import flash_attn_func`
finds this on a machine without FA3. On a GPU outside that profile the real package is used.
Same layout as FA3: q [B, T, H, D], k and v [B, T, Hkv, D] (H a multiple of Hkv); returns
[B, T, H, D], computed by PyTorch's scaled_dot_product_attention.
"""

import torch
import torch.nn.functional as F


def flash_attn_func(q, k, v, causal=False, softmax_scale=None, **_ignored):
    heads, kv_heads = q.shape[2], k.shape[2]
    if heads != kv_heads:
        k = k.repeat_interleave(heads // kv_heads, dim=2)
        v = v.repeat_interleave(heads // kv_heads, dim=2)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2).contiguous()
