"""A loopback HTTP server that serves fixture files the way the real hosts do.

- `/files/<name>`: a plain download (Range requests answered with 206 and Content-Range).
- `/datasets/<repo>/resolve/<revision>/<file>` (and `/<repo>/resolve/...` for model repos): a
  Hugging Face Hub file, with the headers huggingface_hub reads from a HEAD (X-Repo-Commit,
  ETag, Content-Length).

Faults, per path: `drops[path] = [n, ...]` makes the next responses stop after n body bytes
and cut the connection (one list entry per response); `corrupt.add(path)` flips one byte.
`redirects[path] = other` answers 302 (as GitHub and the Hub's CDN do). `log` records
(method, path, Range header) of every request.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Loopback:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # URL path -> bytes
        self.drops: dict[str, list[int]] = {}
        self.corrupt: set[str] = set()
        self.redirects: dict[str, str] = {}  # URL path -> path it answers 302 with
        self.etags: dict[str, str] = {}  # URL path -> the checksum the Hub publishes for it
        self.log: list[tuple[str, str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, name: str, data: bytes) -> str:
        """Serve `data` as a plain file; returns its URL."""
        self.files[f"/files/{name}"] = data
        return f"{self.url}/files/{name}"

    def add_hf(self, repo: str, filename: str, data: bytes, revision: str = "main", repo_type: str = "dataset",
               lfs: bool = True) -> str:
        """Serve `data` as a Hub file at `revision` and at the commit it names; returns its URL
        path. Its ETag is what the Hub publishes: the sha256 of an LFS file, the git blob id of
        a file stored in git (`lfs=False`), computed from the true bytes even when serving
        `corrupt` ones."""
        prefix = "/datasets" if repo_type == "dataset" else ""
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(
            f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()
        for rev in {revision, COMMIT}:
            path = f"{prefix}/{repo}/resolve/{rev}/{filename}"
            self.files[path], self.etags[path] = data, etag
        return f"{prefix}/{repo}/resolve/{revision}/{filename}"

    def requests(self, path: str, method: str = "GET") -> list[str]:
        """Range headers of the requests for `path` ('' for none)."""
        return [rng for m, p, rng in self.log if p == path and m == method]

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(box: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(self.path.split("?", 1)[0])
            rng = self.headers.get("Range", "")
            box.log.append((self.command, path, rng))
            if path in box.redirects:
                self.send_response(302)
                self.send_header("Location", box.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = box.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path in box.corrupt:
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng.startswith("bytes=") else 0
            if start >= len(data) and start > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            self._headers(data, start, box.etags.get(path) or hashlib.sha256(box.files[path]).hexdigest())
            if body:
                self._body(path, data[start:])

        def _headers(self, data: bytes, start: int, etag: str) -> None:
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()

        def _body(self, path: str, payload: bytes) -> None:
            cut = box.drops.get(path)
            if cut:
                self.wfile.write(payload[:cut.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the peer sees a short body: a dropped connection
                return
            self.wfile.write(payload)

    return Handler
