"""A fake Anthropic Messages API on loopback: the network seam for client tests.

The real `anthropic` SDK talks to it through `base_url`, and so does the Claude Code CLI
(`ANTHROPIC_BASE_URL`). Each POST /v1/messages is recorded (path, headers and JSON body) and
answered by a script: a callable taking the request body and returning `(content_blocks,
stop_reason)`. A request with `"stream": true` (what Claude Code sends) is answered as the
API's server-sent events; /v1/messages/count_tokens gets a count. Status codes can be
injected to exercise the SDK's own retries; `hang=True` answers nothing until the fake closes
(a model that never replies), `hang_after=N` answers N requests and then hangs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[dict[str, Any]], tuple[list[dict[str, Any]], str]]


class FakeMessagesAPI:
    def __init__(self, script: Script, usage: dict[str, int] | None = None, hang: bool = False,
                 hang_after: int | None = None) -> None:
        self.script = script
        self.hang_after = 0 if hang else hang_after  # None: never hang
        self._closed = threading.Event()
        self.usage = usage or {"input_tokens": 100, "output_tokens": 20,
                               "cache_creation_input_tokens": 50, "cache_read_input_tokens": 400}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # HTTP statuses to return before answering normally
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeMessagesAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            if self.fail_next:
                code = self.fail_next.pop(0)
                return code, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            n = len(self.requests)
        content, stop = self.script(body)
        return 200, {
            "id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": dict(self.usage),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.split("?")[0].endswith("/count_tokens"):
                    self._send(200, {"input_tokens": 100})
                    return
                with api._lock:
                    hang = api.hang_after is not None and len(api.requests) >= api.hang_after
                    if hang:
                        api.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if hang:
                    api._closed.wait()
                    return
                code, payload = api._answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if code == 200 and body.get("stream"):
                    self._stream(payload)
                else:
                    self._send(code, payload)

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if code != 200:
                    self.send_header("x-should-retry", "true")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, message: dict[str, Any]) -> None:
                data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in sse_events(message))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def sse_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole message as the streaming API sends it: start, each block (its input as one JSON
    delta), the stop reason and output tokens, stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            first, delta = {**block, "input": {}}, {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            first, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        events += [{"type": "content_block_start", "index": i, "content_block": first},
                   {"type": "content_block_delta", "index": i, "delta": delta},
                   {"type": "content_block_stop", "index": i}]
    events += [{"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]}},
               {"type": "message_stop"}]
    return events


def tool_use(name: str, args: dict[str, Any], n: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{n:04d}", "name": name, "input": args}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def last_tool_result_text(body: dict[str, Any]) -> str:
    """The text of the latest tool_result block in a request body (what the model just saw)."""
    for message in reversed(body.get("messages", [])):
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if block.get("type") == "tool_result":
                    inner = block.get("content", [])
                    return inner if isinstance(inner, str) else "".join(c.get("text", "") for c in inner)
    return ""
