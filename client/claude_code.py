"""`--agent claude-code[:MODEL]`: each specialist session is one headless Claude Code run.

It goes through the claude-agent-sdk (`query()`: its control protocol, message types and the
CLI bundled in its wheel) over a transport of ours, `CLITransport`, which starts the CLI with
an environment on an allow-list, in a session of its own, and kills its whole tree when the
session ends, hangs or runs out of time. The system prompt is the specialist brief and the
first message the session start (the lineage view), as in the bundled client.

What the agent may do is fixed on its command line, not asked of the model:

    --tools ""                       no built-in tool at all: no Bash, Read, Edit, Glob, Task…
                                     ("WebSearch,WebFetch" with --web-search)
    --mcp-config FILE                the search's specialist servers, as this specialist only
      --strict-mcp-config            (no other MCP server from anywhere)
    --allowedTools mcp__autoresearch__*  (+ WebSearch, WebFetch)
    --permission-mode dontAsk        whatever is not allowed above is denied, never asked
    --disallowedTools Bash,Read,…    the dangerous built-ins denied by name as well
    --setting-sources=               no user, project or local settings (no hooks, no servers)
    cwd, HOME, TMPDIR                a private empty directory, removed after the session
    verbatim prompts                 no "@/path" file expansion or slash commands in the first
                                     message (it quotes other agents' hypotheses)

A call to anything else comes back to the model as an error and stays in the transcript.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from client._cli_session import CLISession, submitted_exp_id
from client._cli_host import SERVER_NAME, AgentProcess, Endpoint, agent_env, provider_env
from client.llm import Usage
from client.prices import cost_usd

try:
    from claude_agent_sdk import Transport
except ImportError:  # the optional extra is missing; `ClaudeCodeSession.run` says how to install it
    Transport = object  # type: ignore[assignment,misc]

KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL")
"""The provider's key (an API key, a gateway's token or a subscription token) and base URL."""
WEB_TOOLS = ("WebSearch", "WebFetch")
DENIED = ("Bash", "BashOutput", "KillShell", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit",
          "Glob", "Grep", "LS", "Task", "Agent", "Skill", "SlashCommand", "TodoWrite")
FIXED_ENV = {
    "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1", "MCP_TIMEOUT": "60000", "CLAUDE_CODE_ENTRYPOINT": "sdk-py",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE": "1", "NO_COLOR": "1",
}
STOPS = {"error_max_turns": "tool_turn_cap", "error_max_budget_usd": "spend cap"}


def bundled_cli() -> Path:
    """The Claude Code CLI inside the claude-agent-sdk wheel, else `claude` on PATH.

    Raises:
        FileNotFoundError: the SDK or the CLI is missing (the message says how to install them).
    """
    import shutil

    hint = "install the 'clients' extra: pip install -e '.[clients]' (or ./install.sh --dev)"
    try:
        import claude_agent_sdk
    except ImportError:
        raise FileNotFoundError(f"no claude-agent-sdk: {hint}") from None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    found = path if path.exists() else shutil.which("claude")
    if not found:
        raise FileNotFoundError(f"no Claude Code CLI: {hint}")
    return Path(found)


def allowed_tools(web_search: bool) -> tuple[list[str], list[str], list[str]]:
    """(built-in tools offered, tools allowed without asking, tools denied by name)."""
    builtin = list(WEB_TOOLS) if web_search else []
    denied = list(DENIED) + ([] if web_search else list(WEB_TOOLS))
    return builtin, [f"mcp__{SERVER_NAME}__*", *builtin], denied


def mcp_config(endpoint: Endpoint) -> dict[str, Any]:
    """The `--mcp-config` document (the `mcp-config --client claude-code` format)."""
    if endpoint.transport == "http":
        entry: dict[str, Any] = {"type": "http", "url": endpoint.url,
                                 "headers": {"Authorization": f"Bearer {endpoint.token}"}}
    else:
        entry = {"type": "stdio", "command": endpoint.command, "args": endpoint.args, "env": endpoint.env}
    return {"mcpServers": {SERVER_NAME: entry}}


class CLITransport(Transport):  # type: ignore[misc,valid-type]
    """The SDK's `Transport` over our `AgentProcess` (the SDK's own one would pass on our whole
    environment and leave the CLI in our process group)."""

    def __init__(self, proc: AgentProcess, exit_wait_s: float, kill_timeout_s: float) -> None:
        self.proc, self.exit_wait_s, self.kill_timeout_s = proc, exit_wait_s, kill_timeout_s

    async def connect(self) -> None:
        if self.proc.proc is None:
            await self.proc.start()

    async def write(self, data: str) -> None:
        await self.proc.write(data)

    def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        return self._read()

    async def _read(self) -> AsyncIterator[dict[str, Any]]:
        async for line in self.proc.lines():
            line = line.strip()
            if line.startswith("{"):
                yield json.loads(line)

    async def close(self) -> None:
        await self.proc.finish(self.exit_wait_s, self.kill_timeout_s)

    def is_ready(self) -> bool:
        return self.proc.running()

    async def end_input(self) -> None:
        self.proc.close_input()


BLOCK_TYPES = {"TextBlock": "text", "ThinkingBlock": "thinking", "ToolUseBlock": "tool_use",
               "ToolResultBlock": "tool_result", "ServerToolUseBlock": "server_tool_use",
               "ServerToolResultBlock": "web_search_tool_result"}


def block_dict(block: Any) -> dict[str, Any]:
    """An SDK content block as the Messages API writes it (what the bundled client's transcript holds)."""
    data = asdict(block) if hasattr(block, "__dataclass_fields__") else {"value": str(block)}
    return {"type": BLOCK_TYPES.get(type(block).__name__, type(block).__name__), **data}


class ClaudeCodeSession(CLISession):
    """One specialist session as a headless Claude Code run (see the module docstring)."""

    agent = "claude-code"
    cli_path = staticmethod(bundled_cli)

    def argv(self, home: Path, endpoint: Endpoint) -> list[str]:
        builtin, allowed, denied = allowed_tools(self.cli.web_search)
        (home / "system.md").write_text(self.system)
        self.write_private(home / "mcp.json", json.dumps(mcp_config(endpoint)))
        argv = [str(self.cli_path()), "--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
                "--system-prompt-file", str(home / "system.md"), "--tools", ",".join(builtin),
                "--allowedTools", ",".join(allowed), "--disallowedTools", ",".join(denied),
                "--permission-mode", "dontAsk", "--max-turns", str(self.config.max_tool_turns),
                "--mcp-config", str(home / "mcp.json"), "--strict-mcp-config", "--setting-sources="]
        return argv + (["--model", self.model] if self.model else [])

    def env(self, home: Path, endpoint: Endpoint) -> dict[str, str]:
        from claude_agent_sdk import __version__

        source = provider_env(self.source_env, "ANTHROPIC_BASE_URL", self.cli.base_url)
        fixed = {**FIXED_ENV, "CLAUDE_AGENT_SDK_VERSION": __version__,
                 "MCP_TOOL_TIMEOUT": str(int(self.config.time_limit_s * 1000))}
        return agent_env(home, source, KEYS, fixed)

    async def converse(self, proc: AgentProcess, first: str) -> None:
        from claude_agent_sdk import ClaudeAgentOptions, query

        transport = CLITransport(proc, self.cli.exit_wait_s, self.cli.kill_timeout_s)
        # verbatim: the first message quotes other agents' hypotheses; an "@/path" in one must not
        # make Claude Code read a host file into the conversation
        options = ClaudeAgentOptions(verbatim_prompts=True)
        async for message in query(prompt=first, options=options, transport=transport):
            self.on_message(message)

    def on_message(self, msg: Any) -> None:
        kind = type(msg).__name__
        if kind == "SystemMessage" and msg.subtype == "init":
            self.on_init(msg.data)
        elif kind == "AssistantMessage" and msg.parent_tool_use_id is None:
            self.on_assistant(msg)
        elif kind == "UserMessage" and isinstance(msg.content, list):
            blocks = [block_dict(b) for b in msg.content]
            self.messages.append({"role": "user", "content": blocks})
            for b in blocks:
                exp = submitted_exp_id(self.calls.get(b.get("tool_use_id", "")), b, self.config.submit_tool)
                if exp is not None:
                    self.result.exp_ids.append(exp)
        elif kind == "ResultMessage":
            self.on_result(msg)

    def on_init(self, data: dict[str, Any]) -> None:
        self.init = {k: data.get(k) for k in ("model", "tools", "mcp_servers", "permissionMode", "cwd")}
        failed = [s for s in data.get("mcp_servers") or [] if s.get("status") != "connected"]
        if failed:
            self.result.error = f"the search's MCP server did not connect: {failed}"

    def on_assistant(self, msg: Any) -> None:
        blocks = [block_dict(b) for b in msg.content]
        self.messages.append({"role": "assistant", "content": blocks})
        for b in blocks:
            if b["type"] == "tool_use":
                self.calls[b["id"]] = b["name"]
                self.result.tool_calls += 1
        if msg.usage and msg.message_id:  # one API reply may arrive as several messages
            self.usages[msg.message_id] = msg.usage
        self.result.usage = sum_usage(self.usages.values())
        self.result.cost_usd = cost_usd(msg.model or self.model, self.result.usage)

    def on_result(self, msg: Any) -> None:
        self.result.usage = usage_of(msg.usage or {}) if msg.usage else self.result.usage
        if msg.total_cost_usd is not None:
            self.result.cost_usd = float(msg.total_cost_usd)
        self.turns = msg.num_turns
        if msg.subtype == "success" and not msg.is_error:
            self.result.stop_reason = msg.stop_reason or "end_turn"
            return
        self.result.stop_reason = STOPS.get(msg.subtype, "error")
        if self.result.stop_reason == "error":
            why = "; ".join(msg.errors or []) or (msg.result or msg.subtype)
            self.result.error = f"Claude Code: {why}"[:2000]


def usage_of(u: dict[str, Any]) -> Usage:
    server = u.get("server_tool_use") or {}
    return Usage(tokens_in=int(u.get("input_tokens") or 0), tokens_out=int(u.get("output_tokens") or 0),
                 cache_read=int(u.get("cache_read_input_tokens") or 0),
                 cache_write=int(u.get("cache_creation_input_tokens") or 0),
                 web_searches=int(server.get("web_search_requests") or 0))


def sum_usage(usages: Any) -> Usage:
    total = Usage()
    for u in usages:
        total.add(usage_of(u))
    return total
