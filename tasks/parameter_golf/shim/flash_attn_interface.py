"""A stand-in for FlashAttention-3's `flash_attn_interface`, for the smoke profiles only.

The cpu-smoke and gpu-smoke profiles put the folder holding this file first on PYTHONPATH (the
prepared data carries a copy at /data/shim), so the record's
`from flash_attn_interface import flash_attn_func` finds this module. It hands over to the real
FA3 when one is installed further down the path; otherwise it computes attention with
PyTorch's scaled_dot_product_attention. Outside those profiles the real package is imported
directly. Same layout as FA3: q [B, T, H, D], k and v [B, T, Hkv, D] (H a multiple of Hkv);
returns [B, T, H, D]. `BACKEND` says which one is in use.
"""

import importlib.machinery
import importlib.util
import os
import sys

import torch
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))


def _real_fa3():
    """flash_attn_func of an installed FA3 elsewhere on sys.path, or None."""
    path = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("flash_attn_interface", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:  # installed but unusable here (no CUDA extension for this device)
        return None
    return getattr(module, "flash_attn_func", None)


def _sdpa(q, k, v, causal=False, softmax_scale=None, **_ignored):
    heads, kv_heads = q.shape[2], k.shape[2]
    if heads != kv_heads:
        k = k.repeat_interleave(heads // kv_heads, dim=2)
        v = v.repeat_interleave(heads // kv_heads, dim=2)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2).contiguous()


_FA3 = _real_fa3() if torch.cuda.is_available() else None
BACKEND = "fa3" if _FA3 is not None else "sdpa"
flash_attn_func = _FA3 if _FA3 is not None else _sdpa
print(f"flash_attn_interface (smoke shim): {BACKEND}", file=sys.stderr, flush=True)
