"""Client configurations for one specialist, in each MCP client's own format.

    claude-code     .mcp.json: {"mcpServers": {name: {"type": "stdio", command, args, env}}}
                    or {"type": "http", "url", "headers": {"Authorization": "Bearer …"}}
    claude-desktop  claude_desktop_config.json: stdio only (command, args, env)
    codex           ~/.codex/config.toml: [mcp_servers.<name>] command/args/env, or url +
                    bearer_token_env_var (Codex refuses an inline token), with the export line
    cursor          .cursor/mcp.json: command/args/env, or url + headers

stdio entries use absolute paths (the venv's `autoresearch` script) and set
PYTHONUNBUFFERED=1; the server never writes to stdout except the protocol. HTTP entries embed
the specialist's bearer token: keep the printed files out of version control.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CLIENTS = ("claude-code", "claude-desktop", "codex", "cursor")
TRANSPORTS = ("stdio", "http")


def server_command(state_dir: Path, specialist: str, server: str = "suite") -> tuple[str, list[str]]:
    """(command, args) that start this specialist's stdio server, with absolute paths."""
    bindir = Path(sys.executable).absolute().parent  # not resolve(): keep the venv's interpreter
    script = bindir / "autoresearch"
    args = ["serve", "--state", str(Path(state_dir).absolute()), "--specialist", specialist,
            "--server", server, "--transport", "stdio"]
    if script.exists():
        return str(script), args
    return str(Path(sys.executable).absolute()), ["-c", "from client.cli import app; app()", *args]


def token_env_var(specialist: str) -> str:
    """The environment variable that holds a specialist's token for Codex."""
    safe = "".join(c if c.isalnum() else "_" for c in specialist.upper())
    return f"AUTORESEARCH_TOKEN_{safe}"


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def client_config(
    client: str, *, state_dir: Path, specialist: str, token: str | None = None, transport: str = "stdio",
    url: str = "http://127.0.0.1:8000/mcp", name: str = "autoresearch", server: str = "suite",
) -> str:
    """The configuration text for `client` (see the module docstring).

    Raises:
        ValueError: unknown client or transport, HTTP without a token, or Claude Desktop over HTTP.
    """
    if client not in CLIENTS or transport not in TRANSPORTS:
        raise ValueError(f"client is one of {', '.join(CLIENTS)}; transport is stdio or http")
    if transport == "http" and not token:
        raise ValueError("an HTTP configuration needs the specialist's token")
    if client == "claude-desktop" and transport == "http":
        raise ValueError("Claude Desktop starts local servers over stdio only; use --transport stdio "
                         "(a remote HTTP server is added through its Connectors settings instead)")
    command, args = server_command(state_dir, specialist, server)
    env = {"PYTHONUNBUFFERED": "1"}
    if client == "codex":
        return _codex(name, transport, command, args, env, url, specialist, token)
    if transport == "http":
        entry: dict[str, object] = {"url": url, "headers": {"Authorization": f"Bearer {token}"}}
        if client == "claude-code":
            entry = {"type": "http", **entry}
    else:
        entry = {"command": command, "args": args, "env": env}
        if client == "claude-code":
            entry = {"type": "stdio", **entry}
    return json.dumps({"mcpServers": {name: entry}}, indent=2) + "\n"


def _codex(name: str, transport: str, command: str, args: list[str], env: dict[str, str], url: str,
           specialist: str, token: str | None) -> str:
    table = f"[mcp_servers.{_toml_str(name) if not name.replace('-', '').replace('_', '').isalnum() else name}]"
    if transport == "http":
        var = token_env_var(specialist)
        return "\n".join([
            f"# in the shell that starts codex: export {var}={token}",
            table, f"url = {_toml_str(url)}", f"bearer_token_env_var = {_toml_str(var)}",
            "tool_timeout_sec = 120", "",
        ])
    env_items = ", ".join(f"{k} = {_toml_str(v)}" for k, v in env.items())
    return "\n".join([
        table, f"command = {_toml_str(command)}", f"args = [{', '.join(_toml_str(a) for a in args)}]",
        f"env = {{ {env_items} }}", "startup_timeout_sec = 30", "tool_timeout_sec = 120", "",
    ])
