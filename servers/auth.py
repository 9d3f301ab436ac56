"""Who is calling: bearer tokens over HTTP, a fixed specialist over stdio or in memory.

    <state>/tokens.json     {specialist: token}, mode 0600, written by `autoresearch init`
    <state>/viewer-token    the read-only viewer token of the web dashboard, mode 0600, made on
                            first use (`autoresearch tokens`, `dashboard`, `serve --transport http`)

Over HTTP a `SearchTokenVerifier` maps the bearer token to its specialist (the access
token's `client_id`); a request without a valid token is answered 401 before any tool runs.
A wrong token's 401 says so, and where the right ones are listed (`autoresearch tokens`),
instead of the generic advice to re-register with OAuth (these servers have no OAuth).
Over stdio (and for in-process clients) the server is built for one specialist, fixed when it
starts. `current_specialist` is the one helper every tool calls; no tool takes a name.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware

from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.dependencies import get_access_token

from lineage.state import StateLayout

SCOPE = "specialist"
MCP_PATH = "/mcp"  # the only path whose bearer tokens the MCP verifier judges (see WrongTokenReply)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_tokens(state_dir: Path, roster: Iterable[str]) -> dict[str, str]:
    """Create a fresh random token per specialist; the file is readable by its owner only."""
    tokens = {name: secrets.token_urlsafe(32) for name in roster}
    _write_private(StateLayout(Path(state_dir)).tokens, json.dumps(tokens, indent=2) + "\n")
    return tokens


def viewer_token(state_dir: Path) -> str:
    """The search's read-only dashboard token, created (0600) on first use.

    It opens the web dashboard and nothing else: the MCP servers never accept it.
    """
    path = StateLayout(Path(state_dir)).viewer_token
    if not path.exists():  # made complete, then linked: two processes starting at once agree on one
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        _write_private(tmp, secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path} is empty; delete it and a new viewer token is made on the next start")
    return token


def dashboard_tokens(state_dir: Path) -> dict[str, str]:
    """{name: token} that open a search's dashboard: its specialists' (if any) and the viewer's."""
    try:
        tokens = load_tokens(state_dir)
    except FileNotFoundError:  # an imported search has no specialists' tokens
        tokens = {}
    return {**tokens, "viewer": viewer_token(state_dir)}


def named_tokens(values: Iterable[str], default_name: str = "client") -> dict[str, str]:
    """{name: token} from "NAME=TOKEN" items (a bare "TOKEN" is `default_name`'s).

    Raises:
        ValueError: an empty name or token, or a name or token given twice.
    """
    out: dict[str, str] = {}
    for item in values:
        name, sep, token = item.partition("=")
        name, token = (name.strip(), token.strip()) if sep else (default_name, item.strip())
        if not name or not token:
            raise ValueError(f"{item!r}: give NAME=TOKEN with a non-empty name and token")
        if name in out or token in out.values():
            raise ValueError(f"{name!r}: each caller needs a name and a token of its own")
        out[name] = token
    return out


def read_tokens_file(path: Path) -> dict[str, str]:
    """{name: token} from a JSON file (the format of tokens.json).

    Raises:
        ValueError: not a JSON object of non-empty strings, or a token used twice.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                             for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object {{name: token}} of non-empty strings")
    if len(set(data.values())) != len(data):
        raise ValueError(f"{path}: each caller needs a token of its own")
    return dict(data)


def load_tokens(state_dir: Path) -> dict[str, str]:
    """{specialist: token}; raises FileNotFoundError with the fix when the file is absent."""
    path = StateLayout(Path(state_dir)).tokens
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; create the search with `autoresearch init`")
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data.items()}


def wrong_token_text(state_dir: Path | str = "<state dir>") -> str:
    """What a 401 for an unknown token says on a search's servers."""
    return f"the bearer token is wrong: `autoresearch tokens --state {state_dir}` lists the right ones"


WRONG_TOKEN = wrong_token_text()


class SearchTokenVerifier(TokenVerifier):
    """Bearer token -> caller name, compared in constant time.

    `wrong_token` is what a 401 for an unknown token says (where the right tokens are listed).
    """

    def __init__(self, tokens: dict[str, str], wrong_token: str = WRONG_TOKEN) -> None:
        super().__init__(required_scopes=[SCOPE])
        self._pairs = [(tok.encode(), name) for name, tok in tokens.items()]
        self.wrong_token = wrong_token

    def get_middleware(self) -> list[Any]:
        return [Middleware(WrongTokenReply, verifier=self), *super().get_middleware()]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode("utf-8", "replace")
        found = None
        for tok, name in self._pairs:  # no early exit: time does not depend on which matched
            if hmac.compare_digest(tok, given):
                found = name
        if found is None:
            return None
        return AccessToken(token=token, client_id=found, scopes=[SCOPE])


def current_specialist(fixed: str | None, roster: Iterable[str]) -> str:
    """The calling specialist: the HTTP token's owner, else the server's fixed specialist.

    Raises:
        ToolError: the connection carries no identity, or the name is not in the roster.
    """
    token = get_access_token()
    name = token.client_id if token is not None else fixed
    if not name:
        raise ToolError(
            "this server does not know who you are: start it with --specialist NAME (stdio) "
            "or connect over HTTP with your bearer token (autoresearch tokens --state DIR)"
        )
    if name not in tuple(roster):
        raise ToolError(f"{name!r} is not a specialist of this search; use a name from its roster")
    return name


class WrongTokenReply:
    """ASGI middleware: a request to the MCP endpoint whose bearer token is unknown gets a 401
    saying so. Other paths (the web dashboard beside it) judge their own tokens."""

    def __init__(self, app: Any, verifier: SearchTokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _bearer(scope) if scope["type"] == "http" and is_mcp_path(scope.get("path", "")) else None
        if token is None or await self.verifier.verify_token(token) is not None:
            await self.app(scope, receive, send)
            return
        text = self.verifier.wrong_token
        body = json.dumps({"error": "invalid_token", "error_description": text}).encode()
        challenge = f'Bearer error="invalid_token", error_description="{text.replace(chr(34), chr(39))}"'
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode("latin-1", "replace"))]})
        await send({"type": "http.response.body", "body": body})


def is_mcp_path(path: str) -> bool:
    return path == MCP_PATH or path.startswith(MCP_PATH + "/")


def _bearer(scope: Any) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None
