"""Hugging Face Hub files verified by the checksum the Hub publishes for them.

Where a task cannot record a file's sha256 in advance, `Source(hub_checksum=True)` asks the
Hub once (a HEAD request) for the file at the source's revision: the commit that revision
names now, and the file's checksum there (the sha256 of a file stored with LFS, which the Hub
gives as its ETag; the git blob id of a small file stored in git). The download is then pinned
to that commit and checked against that checksum, and both go into the manifest, so every
later prepare and run uses exactly those bytes, offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from tasks.exceptions import DownloadError

_SHA256, _SHA1 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


def hub_pinned(src: Any, endpoint: str | None) -> Any:
    """`src` (a `Source`) pinned to a commit, with the checksum the Hub publishes for the file."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(src.hf_repo, src.hf_file, repo_type=src.hf_repo_type, revision=src.hf_revision,
                     endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url)
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise DownloadError(f"{src.where}: asking the Hub for its checksum failed: {type(e).__name__}: "
                            f"{str(e)[:300]}; check the network (HF_TOKEN for gated repos) and run again") from None
    etag = (meta.etag or "").strip('"').removeprefix("W/").strip('"').lower()
    pinned = dataclasses.replace(src, hf_revision=meta.commit_hash or src.hf_revision, size=meta.size)
    if _SHA256.fullmatch(etag):
        return dataclasses.replace(pinned, sha256=etag)
    if _SHA1.fullmatch(etag):
        return dataclasses.replace(pinned, md5=f"git-blob:{etag}")
    raise DownloadError(f"{src.where}: the Hub published no checksum for it (ETag {meta.etag!r}); record its "
                        "sha256 in the task's pins instead")


def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file: sha1 of 'blob <size>\\0' and its bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
