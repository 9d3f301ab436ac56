"""Who may read the dashboard: a token once, then an HttpOnly cookie derived from it.

A browser cannot send a bearer header on its first visit, so the page is opened once with the
token in its address, `http://HOST:PORT/?token=TOKEN` (what `autoresearch dashboard` prints;
`autoresearch tokens` lists the tokens). The gate checks it, answers with a redirect to the same
address without the token (so it leaves the address bar and the history, and no Referer can
carry it) and sets a cookie: HttpOnly (page scripts cannot read it), SameSite=Lax (other sites'
requests do not carry it), Secure over HTTPS, valid 7 days. The cookie's value is not the
token: it is HMAC-SHA256(token, a fixed label), which opens this dashboard and nothing else (the
MCP servers never accept it). Scripts and tools may send `Authorization: Bearer TOKEN` instead.

Accepted tokens: the search's specialists' tokens and its read-only viewer token
(`servers.auth.dashboard_tokens`); with several searches, any of theirs. Every comparison is
constant-time over all of them. Only `/static/` (the page's code and styles, no data) is
open without a token. Every response carries headers that keep the page to itself:
a content security policy (scripts only from this server), no framing, no Referer, no sniffing.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

PUBLIC = "/static/"  # the page's own scripts and styles: code, no data
COOKIE_LABEL = b"autoresearch dashboard cookie v1"
COOKIE_MAX_AGE = 7 * 24 * 3600
# Plotly's WebGL scatter compiles its shaders with `new Function` (hence 'unsafe-eval'); inline
# scripts stay forbidden, so text from the lineage can never run as code.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"referrer-policy", b"no-referrer"),
           (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), COOKIE_LABEL, hashlib.sha256).hexdigest()


class TokenGate:
    """ASGI middleware in front of the dashboard (see the module docstring)."""

    def __init__(self, app: Any, tokens: dict[str, str], how_to: str) -> None:
        self.app = app
        self._tokens = [t.encode() for t in tokens.values()]
        self._cookies = [cookie_value(t).encode() for t in tokens.values()]
        self.how_to = how_to  # where the tokens are listed, for a 401's text

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._judge(request)
        send = _with_headers(send)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _judge(self, request: Request) -> Response | None:
        """None to let the request through, else the answer (a redirect or a 401)."""
        if request.url.path.startswith(PUBLIC):
            return None
        given = request.query_params.get("token")
        if given is not None:
            if not _any_equal(self._tokens, given):
                return self._denied(request, "the token in the address is wrong")
            return self._exchange(request, given)
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            if _any_equal(self._tokens, auth[7:].strip()):
                return None
            return self._denied(request, "the bearer token is wrong")
        cookie = request.cookies.get(cookie_name(request))
        if cookie is not None and _any_equal(self._cookies, cookie):
            return None
        return self._denied(request, "this dashboard needs a token")

    def _exchange(self, request: Request, token: str) -> Response:
        """The token for a cookie, and the same address without it."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = URL(path=request.url.path, query=urlencode(rest))
        response = RedirectResponse(str(target), status_code=303, headers={"cache-control": "no-store"})
        response.set_cookie(cookie_name(request), cookie_value(token), max_age=COOKIE_MAX_AGE, path="/",
                            httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return response

    def _denied(self, request: Request, why: str) -> Response:
        text = f"{why}: {self.how_to}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "unauthorized", "detail": text}, status_code=401,
                                headers={"www-authenticate": "Bearer", "cache-control": "no-store"})
        return HTMLResponse(_DENIED.format(text=escape(text)), status_code=401,
                            headers={"www-authenticate": "Bearer", "cache-control": "no-store"})


def cookie_name(request: Request) -> str:
    """One cookie per port: cookies ignore ports, and two dashboards on one host must not collide."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    return f"ar_dashboard_{port}"


def _any_equal(known: list[bytes], given: str) -> bool:
    value = given.encode("utf-8", "replace")
    found = False
    for k in known:  # no early exit: the time does not depend on which one matched
        found = hmac.compare_digest(k, value) or found
    return found


def _with_headers(send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
        await send(message)
    return wrapped


_DENIED = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>autoresearch: sign in</title>
<link rel="stylesheet" href="/static/app.css"></head><body class="denied"><main>
<h1>autoresearch dashboard</h1><p class="why">{text}</p>
<p>Open the address <code>autoresearch dashboard</code> printed, or add <code>?token=TOKEN</code> to this
address with a token from <code>autoresearch tokens --state DIR</code> (the <code>viewer</code> line is
read-only).</p></main></body></html>"""
