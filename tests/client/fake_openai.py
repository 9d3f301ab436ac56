"""A fake OpenAI Responses API on loopback: the network seam for the Codex CLI tests.

Codex talks to it through its model provider's `base_url`. Each POST .../responses is
recorded (path, headers, JSON body) and answered by a script: a callable taking the request
body and returning the output items of one model turn (`message(...)`, `function_call(...)`),
streamed as the API's server-sent events and closed by `response.completed` with `usage`.
GET .../models answers an empty list. `hang=True` answers nothing until the fake closes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[dict[str, Any]], list[dict[str, Any]]]


class FakeResponsesAPI:
    def __init__(self, script: Script, usage: dict[str, int] | None = None, hang: bool = False) -> None:
        self.script, self.hang = script, hang
        self.usage = usage or {"input_tokens": 300, "cached_tokens": 200, "output_tokens": 30}
        self.requests: list[dict[str, Any]] = []
        self.other: list[str] = []  # every request that was not a model turn: "METHOD path"
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeResponsesAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def _turn(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]] | None:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            n = len(self.requests)
        if self.hang:
            self._closed.wait()
            return None
        return sse_events(self.script(body), f"resp_{n:04d}", body.get("model", ""), self.usage)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                api.other.append(f"GET {self.path}")
                self._send(200, "application/json", json.dumps({"object": "list", "data": [], "models": []}).encode())

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length) or b"{}"
                if not self.path.split("?")[0].endswith("/responses"):
                    api.other.append(f"POST {self.path}")
                    self._send(404, "application/json", b'{"error": {"message": "not here"}}')
                    return
                events = api._turn(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw))
                if events is None:
                    return
                data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
                self._send(200, "text/event-stream", data)

            def _send(self, code: int, kind: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def sse_events(items: list[dict[str, Any]], rid: str, model: str, usage: dict[str, int]) -> list[dict[str, Any]]:
    """One model turn as the Responses API streams it: created, each output item done, completed."""
    response = {"id": rid, "object": "response", "model": model, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": response}]
    for i, item in enumerate(items):
        events.append({"type": "response.output_item.added", "output_index": i, "item": item})
        events.append({"type": "response.output_item.done", "output_index": i, "item": item})
    u = {"input_tokens": usage["input_tokens"], "input_tokens_details": {"cached_tokens": usage["cached_tokens"]},
         "output_tokens": usage["output_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
         "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
    events.append({"type": "response.completed", "response": {**response, "status": "completed", "output": items, "usage": u}})
    return events


def message(text: str, n: int = 0) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{n:04d}", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def function_call(name: str, args: dict[str, Any], n: int) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{n:04d}", "call_id": f"call_{n:04d}", "name": name,
            "arguments": json.dumps(args), "status": "completed"}


def turns(body: dict[str, Any]) -> int:
    """How many model turns the conversation in a request already holds."""
    return sum(1 for item in body.get("input", []) if item.get("type") == "function_call"
               or (item.get("type") == "message" and item.get("role") == "assistant"))


def last_output(body: dict[str, Any]) -> str:
    """The output of the latest tool call in a request (what the model just saw)."""
    for item in reversed(body.get("input", [])):
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            out = item.get("output")
            if isinstance(out, list):
                return "".join(c.get("text", "") for c in out if isinstance(c, dict))
            return out if isinstance(out, str) else json.dumps(out)
    return ""
