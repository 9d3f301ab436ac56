"""Fetching one file for `tasks._prepare`: resumable HTTP, Hugging Face Hub, checksums.

- `fetch_http(url, part, ...)` appends to `part` (a `.part` file), continuing with a Range
  request where bytes are already there; a dropped connection is retried from where it
  stopped, `retries` times, then raised as `DownloadError` (the `.part` stays for next time).
- `fetch_hf(...)` goes through `huggingface_hub.hf_hub_download` into a staging dir (it
  resumes and retries on its own) and returns the downloaded file's path.
- `file_digests(path, ...)` hashes a file once for sha256 and MD5 together.

Progress goes to a `Progress` (the CLI draws rich bars from it); `NO_PROGRESS` ignores it.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from tasks.exceptions import DownloadError

CHUNK = 1 << 20
_NETWORK_ERRORS = (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError,
                   TimeoutError, urllib.error.URLError)  # retried; anything else is raised at once


class Progress(Protocol):
    """What `prepare` reports while it works (all sizes in bytes)."""

    def start(self, total_bytes: int, files: int) -> None:
        """The work ahead: bytes still to download and files still to fetch."""

    def file(self, dest: str, size: int | None, done: int = 0) -> None:
        """A file starts (or resumes with `done` bytes already there)."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more bytes were downloaded or hashed."""

    def message(self, text: str) -> None:
        """A step: verifying, building, nothing to do…"""


class _NoProgress:
    def start(self, total_bytes: int, files: int) -> None:
        pass

    def file(self, dest: str, size: int | None, done: int = 0) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def message(self, text: str) -> None:
        pass


NO_PROGRESS: Progress = _NoProgress()


def file_digests(path: Path, progress: Progress = NO_PROGRESS) -> tuple[str, str]:
    """(sha256, md5) of the file's bytes, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
            progress.advance(len(chunk))
    return sha.hexdigest(), md5.hexdigest()


# ---------------------------------------------------------------- plain HTTP(S)


def fetch_http(url: str, part: Path, *, progress: Progress = NO_PROGRESS, retries: int = 3,
               timeout_s: float = 60.0) -> None:
    """Download `url` into `part`, continuing what is there; returns when the body is complete.

    Raises:
        DownloadError: the server refused, or the connection kept dropping (`part` keeps
            the bytes received so far; the next call resumes from there).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    part.touch(exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, progress, timeout_s)
            return
        except _NETWORK_ERRORS as e:
            if isinstance(e, urllib.error.HTTPError) or attempt == retries:
                raise _download_error(url, part, e) from None
        except (OSError, ValueError) as e:  # not worth a retry: TLS, a full disk, a malformed URL
            raise _download_error(url, part, e) from None


def _fetch_once(url: str, part: Path, progress: Progress, timeout_s: float) -> None:
    have = part.stat().st_size
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing past what we hold: the body is complete
            return
        raise
    with response:
        total = _total_size(response, have)
        if response.status == 200 and have:  # the server ignored the Range: start over
            part.write_bytes(b"")
            have = 0
        with part.open("ab") as f:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                f.write(chunk)
                progress.advance(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def _total_size(response: Any, have: int) -> int | None:
    """The full body's size from Content-Range (a 206) or Content-Length (a 200)."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length is None:
        return None
    return int(length) + (have if response.status == 206 else 0)


def _download_error(url: str, part: Path, e: BaseException) -> DownloadError:
    held = part.stat().st_size if part.exists() else 0
    if isinstance(e, urllib.error.HTTPError):
        return DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}; check the address "
                             "and your network, then run the same command again")
    return DownloadError(f"{url}: download interrupted ({type(e).__name__}: {e}) with {held:,} bytes "
                         f"kept in {part}; run the same command again to resume")


# ---------------------------------------------------------------- Hugging Face Hub


def fetch_hf(repo: str, filename: str, *, repo_type: str, revision: str, staging: Path,
             endpoint: str | None = None, progress: Progress = NO_PROGRESS) -> Path:
    """Download one Hub file into `staging` (resumable) and return its path there.

    `endpoint` None means huggingface_hub's own default (which honours HF_ENDPOINT).

    Raises:
        DownloadError: the Hub refused or the connection failed (partial bytes stay in
            `staging` for huggingface_hub to resume).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        path = hf_hub_download(repo, filename, repo_type=repo_type, revision=revision,
                               local_dir=staging, endpoint=endpoint, tqdm_class=_bar_class(progress))
    except (HfHubHTTPError, OSError, ValueError) as e:  # ValueError: huggingface_hub's "offline" refusals
        where = f"{repo}/{filename}@{revision} ({repo_type} repo on {endpoint or 'the Hugging Face Hub'})"
        raise DownloadError(f"{where}: {type(e).__name__}: {str(e)[:400]}; check the repo, revision "
                            "and network (HF_TOKEN for gated repos), then run the same command again "
                            "to resume") from None
    return Path(path)


def _bar_class(progress: Progress) -> type:
    """A tqdm class that shows nothing itself and forwards byte counts to `progress`."""
    from tqdm.auto import tqdm

    class _Forward(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            progress.advance(int(kwargs.get("initial") or 0))  # bytes a resumed download already held

        def update(self, n: float | None = 1) -> bool | None:
            progress.advance(int(n or 0))
            return None

    return _Forward
