"""The FA3 kernel cached at prepare time, so trials load it offline.

nanochat's `flash_attention.py` asks `kernels.get_kernel("varunneal/flash-attention-3")` for
FlashAttention-3 on Hopper GPUs and falls back to PyTorch SDPA on any failure. Trials have no
network, so `stage(cache)` downloads the kernel's build for this machine's torch (the
`build/<variant>/` folder `kernels` would pick) into a Hugging Face cache laid out as the Hub
client expects (`public/hf/hub`, bound read-only at `/data/hf/hub`), checks every file
against the checksum the Hub publishes for it at the commit `main` named, and records that
commit. The trial phases run with `HF_HUB_OFFLINE=1` and `HF_HUB_CACHE`/`HF_KERNELS_CACHE`
pointing there. The patched `flash_attention.py` prints why FA3 did not load, and the patched
`base_train.py` records in the checkpoint's metadata which attention trained (`"attention"`,
from the flag that prints "Using Flash Attention 3"), which `bench/gpu_smoke_nanochat.py`
asserts on Hopper GPUs (a valid trial's log does not come back, its checkpoint does).

Staging needs the `kernels` package (the `gpu` extra) and the network; without them it is
skipped, and the status says why (trials then use SDPA, as upstream does off Hopper).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tasks.nanochat_d12.upstream import FA3_REPO


def _variant() -> str:
    from kernels.utils import build_variant  # the folder name `kernels` itself looks for

    return build_variant()


def _published(api: Any, commit: str, folder: str) -> dict[str, str]:
    """Path -> the checksum the Hub publishes (sha256 of an LFS file, else the git blob id)."""
    out = {}
    for entry in api.list_repo_tree(FA3_REPO, path_in_repo=folder, recursive=True, revision=commit):
        if getattr(entry, "blob_id", None) is not None:
            lfs = getattr(entry, "lfs", None)
            out[entry.path] = lfs.sha256 if lfs is not None else f"git-blob:{entry.blob_id}"
    return out


def _digest(path: Path, want: str) -> str:
    data = path.read_bytes()
    if want.startswith("git-blob:"):
        return "git-blob:" + hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()
    return hashlib.sha256(data).hexdigest()


def stage(cache: Path) -> dict[str, Any]:
    """Download and verify the FA3 build for this machine into `cache`; the status either way."""
    try:
        variant = _variant()
    except ImportError:
        return {"staged": False, "why": "the `kernels` package is not installed (pip install 'autoresearch[gpu]' "
                                        "and prepare again); trials use PyTorch SDPA attention"}
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    folder = f"build/{variant}"
    try:
        commit = HfApi().repo_info(FA3_REPO).sha
        local = Path(snapshot_download(FA3_REPO, revision="main", allow_patterns=[f"{folder}/*"], cache_dir=cache))
        published = _published(HfApi(), commit, folder)
    except (HfHubHTTPError, OSError, ValueError) as e:
        return {"staged": False, "variant": variant, "why": f"{type(e).__name__}: {str(e)[:300]}"}
    if not published:
        return {"staged": False, "variant": variant, "why": f"{FA3_REPO} has no {folder}/ for this torch"}
    bad = [p for p, want in published.items() if not (local / p).is_file() or _digest(local / p, want) != want]
    if bad:
        raise OSError(f"FA3 kernel files do not match the Hub's checksums: {bad[:3]}; prepare again")
    return {"staged": True, "variant": variant, "repo": FA3_REPO, "commit": commit, "files": len(published)}
