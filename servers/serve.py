"""Run a built server over stdio or streamable HTTP, under uvloop where available.

stdio: nothing but the protocol goes to stdout; logs go to stderr. HTTP: served at
`http://HOST:PORT/mcp`; the caller passes the token verifier when building the server, so a
request without a valid bearer token is answered 401. `web`, an ASGI app such as the search's
dashboard, answers every other path of the same server (it checks its own tokens).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from fastmcp import FastMCP
from starlette.middleware import Middleware

from servers.auth import MCP_PATH, is_mcp_path

TRANSPORTS = ("stdio", "http")
HTTP_PATH = MCP_PATH


def http_url(host: str, port: int) -> str:
    return f"http://{host}:{port}{HTTP_PATH}"


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop (asyncio where uvloop is missing, e.g. on Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platform without uvloop
        asyncio.run(main)
        return
    uvloop.run(main)


def log_to_stderr(level: int = logging.WARNING) -> None:
    """Send this process's logs to stderr (stdout belongs to the stdio protocol)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


class WebFront:
    """ASGI middleware (innermost): paths outside the MCP endpoint go to `web`.

    It sits behind the server's Host/Origin guard and auth middleware; those leave requests
    for other paths alone, so `web` must check its own credentials (the dashboard does).
    """

    def __init__(self, app: Any, web: Any) -> None:
        self.app, self.web = app, web

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not is_mcp_path(scope.get("path", "")):
            await self.web(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def serve(mcp: FastMCP, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000,
          web: Any = None) -> None:
    """Serve `mcp` until interrupted; over HTTP, `web` (an ASGI app) answers every other path.

    Raises:
        ValueError: an unknown transport.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r}: expected stdio or http")
    log_to_stderr()
    if transport == "stdio":
        run_loop(mcp.run_async(transport="stdio", show_banner=False))
    else:
        extra = [Middleware(WebFront, web=web)] if web is not None else None
        run_loop(mcp.run_async(transport="http", host=host, port=port, path=HTTP_PATH,
                               show_banner=False, log_level="warning", middleware=extra))
