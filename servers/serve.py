"""Run a built server over stdio or streamable HTTP, under uvloop where available.

stdio: nothing but the protocol goes to stdout; logs go to stderr. HTTP: served at
`http://HOST:PORT/mcp`; the caller passes the token verifier when building the server, so a
request without a valid bearer token is answered 401.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from fastmcp import FastMCP

TRANSPORTS = ("stdio", "http")
HTTP_PATH = "/mcp"


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


def serve(mcp: FastMCP, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `mcp` until interrupted.

    Raises:
        ValueError: an unknown transport.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r}: expected stdio or http")
    log_to_stderr()
    if transport == "stdio":
        run_loop(mcp.run_async(transport="stdio", show_banner=False))
    else:
        run_loop(mcp.run_async(transport="http", host=host, port=port, path=HTTP_PATH,
                               show_banner=False, log_level="warning"))
