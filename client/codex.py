"""`--agent codex[:MODEL]`: each specialist session is one `codex exec --json` run.

The CLI comes from npm (`@openai/codex`, pinned in `CODEX_VERSION`): on PATH, or in the
per-user prefix `install.sh --dev` fills (`codex_path()` installs it there on demand when npm
is present). Its whole configuration is written per session into a private `CODEX_HOME`; no
user config is read, and its session files (where the tokens of each reply are counted, also
for a run cut short) go there too. The model provider is ours, `autoresearch`: the Responses API
at the base URL (`AgentCLISettings.base_url`, else OPENAI_BASE_URL, else OpenAI's), keyed by
OPENAI_API_KEY, so an OpenAI-compatible local server works the same way.

The system prompt (`model_instructions_file`) is the specialist brief; the first message, on
stdin, the session start. What the agent may do is set in that configuration:

    features.shell_tool / unified_exec /         no shell (exec_command, write_stdin), and no
      shell_snapshot = false                     login shell run to copy its environment
    features.view_image = false                  no reading of image files from disk
    agents.enabled, features.goals = false       no sub-agents, no goal tools
    web_search = "disabled"                      ("live" with --web-search)
    sandbox read-only, approval policy never     the CLI's own sandbox for anything left
    [mcp_servers.autoresearch]                   the search's specialist servers, as this
                                                 specialist (the `mcp-config --client codex` format)

What stays offered besides the search's tools: Codex's MCP resource readers (they reach only
the configured server, ours) and `request_user_input` (refused in exec mode). Codex has no
turn cap of its own: the session stops the run once `max_tool_turns` tool calls are done.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from client._cli_host import SERVER_NAME, AgentProcess, Endpoint, agent_env
from client._cli_session import CLISession, is_tool, submitted_exp_id
from client.llm import Usage
from client.prices import cost_usd

CODEX_VERSION = "0.171.0"
PREFIX = Path.home() / ".cache" / "autoresearch" / "codex"
KEYS = ("OPENAI_API_KEY",)
DEFAULT_BASE_URL = "https://api.openai.com/v1"
FEATURES_OFF = ("shell_tool", "unified_exec", "shell_snapshot", "view_image", "goals", "apps", "plugins",
                "image_generation", "browser_use", "computer_use", "memories")
REFUSED = re.compile(r"unsupported call: ([\w.-]+)")
"""How Codex logs a call to a tool it does not offer (it never reaches the JSON event stream)."""
TOOL_ITEMS = ("mcp_tool_call", "command_execution", "file_change", "web_search")


def codex_path(install: bool = True) -> Path:
    """The Codex CLI: `codex` on PATH, else in `PREFIX` (installed there from npm when missing).

    Raises:
        FileNotFoundError: no CLI, and npm could not install one (the reason is in the message).
    """
    found = shutil.which("codex")
    local = PREFIX / "node_modules" / ".bin" / "codex"
    if found or local.exists():
        return Path(found or local)
    if not install or not shutil.which("npm"):
        raise FileNotFoundError("no Codex CLI: `npm install -g @openai/codex` (or ./install.sh --dev)")
    PREFIX.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX),
                           f"@openai/codex@{CODEX_VERSION}"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not local.exists():
        raise FileNotFoundError(f"npm could not install @openai/codex@{CODEX_VERSION}: {done.stderr[-500:]}")
    return local


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_config(endpoint: Endpoint, *, model: str, base_url: str, system_file: Path, web_search: bool,
                 token_var: str, tool_timeout_s: float) -> str:
    """The session's config.toml (the MCP table as `mcp-config --client codex` prints it)."""
    lines = [f"model = {toml_str(model)}" if model else "", 'model_provider = "autoresearch"',
             f"model_instructions_file = {toml_str(str(system_file))}", 'approval_policy = "never"',
             'sandbox_mode = "read-only"', f"web_search = {toml_str('live' if web_search else 'disabled')}",
             "project_doc_max_bytes = 0", "check_for_update_on_startup = false",
             "[history]", 'persistence = "none"', "[analytics]", "enabled = false", "[agents]", "enabled = false",
             "[features]",
             *[f"{name} = false" for name in FEATURES_OFF],
             "[model_providers.autoresearch]", 'name = "autoresearch"', f"base_url = {toml_str(base_url)}",
             'env_key = "OPENAI_API_KEY"', 'wire_api = "responses"', f"[mcp_servers.{SERVER_NAME}]"]
    if endpoint.transport == "http":
        lines += [f"url = {toml_str(endpoint.url)}", f"bearer_token_env_var = {toml_str(token_var)}"]
    else:
        env = ", ".join(f"{k} = {toml_str(v)}" for k, v in endpoint.env.items())
        lines += [f"command = {toml_str(endpoint.command)}",
                  f"args = [{', '.join(toml_str(a) for a in endpoint.args)}]", f"env = {{ {env} }}"]
    lines += ["startup_timeout_sec = 60", f"tool_timeout_sec = {int(tool_timeout_s)}", "required = true"]
    return "\n".join(line for line in lines if line) + "\n"


class CodexSession(CLISession):
    """One specialist session as a `codex exec` run (see the module docstring)."""

    agent = "codex"
    cli_path = staticmethod(codex_path)

    def token_var(self) -> str:
        from servers.clientconfig import token_env_var

        return token_env_var(self.specialist)

    def argv(self, home: Path, endpoint: Endpoint) -> list[str]:
        (home / "system.md").write_text(self.system)
        (home / ".codex").mkdir(mode=0o700)
        base_url = self.cli.base_url or self.source_env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.write_private(home / ".codex" / "config.toml", codex_config(
            endpoint, model=self.model, base_url=base_url, system_file=home / "system.md",
            web_search=self.cli.web_search, token_var=self.token_var(), tool_timeout_s=self.config.time_limit_s))
        return [str(codex_path(install=False)), "exec", "--json", "--skip-git-repo-check", "--color", "never",
                "-C", str(home), "-"]

    def env(self, home: Path, endpoint: Endpoint) -> dict[str, str]:
        fixed = {"CODEX_HOME": str(home / ".codex"), "NO_COLOR": "1"}
        if endpoint.transport == "http":
            fixed[self.token_var()] = endpoint.token  # this specialist's own token, nobody else's
        return agent_env(home, self.source_env, KEYS, fixed)

    async def converse(self, proc: AgentProcess, first: str) -> None:
        await proc.start()
        await proc.write(first)
        proc.close_input()
        async for line in proc.lines():
            line = line.strip()
            if line.startswith("{"):
                self.on_event(json.loads(line))
            if self.result.stop_reason == "tool_turn_cap":
                await proc.finish(self.cli.exit_wait_s, self.cli.kill_timeout_s, term=True)
                return
        await proc.proc.wait()  # type: ignore[union-attr]

    def after(self, log: str, home: Path) -> None:
        """Calls Codex refused (tools it does not offer) are only in its log: put them on record.
        Its session file counts the tokens of every model call, also when the run was cut short
        (the event stream reports them only at the end of a turn)."""
        counted = last_token_count(home / ".codex" / "sessions")
        if counted:
            self.set_usage(counted)
        for name in REFUSED.findall(log):
            use_id = f"refused_{len(self.calls)}"
            self.calls[use_id] = name
            self.messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": name}]})
            self.messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_id,
                                                               "is_error": True, "content": f"unsupported call: {name}"}]})
            self.result.tool_calls += 1

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "thread.started":
            self.init = {"thread_id": event.get("thread_id"), "model": self.model}
        elif kind == "item.completed":
            self.on_item(event.get("item") or {})
        elif kind == "turn.completed":
            self.set_usage(event.get("usage") or {})
            self.turns += 1
            self.result.stop_reason = self.result.stop_reason or "end_turn"
        elif kind in ("turn.failed", "error"):
            err = event.get("error") or {}
            self.result.error = f"Codex: {err.get('message') if isinstance(err, dict) else err or event.get('message')}"[:2000]
            self.result.stop_reason = "error"

    def on_item(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "agent_message":
            self.messages.append({"role": "assistant", "content": [{"type": "text", "text": item.get("text", "")}]})
        elif kind in TOOL_ITEMS:
            self.on_tool(item)
        elif kind == "error":
            self.messages.append({"role": "system", "content": [{"type": "text", "text": item.get("message", "")}]})
        else:
            self.messages.append({"role": "assistant", "content": [{"type": kind or "item", **item}]})

    def on_tool(self, item: dict[str, Any]) -> None:
        name = f"{item.get('server')}__{item.get('tool')}" if item.get("type") == "mcp_tool_call" else item["type"]
        use_id = str(item.get("id"))
        result, error = item.get("result") or {}, item.get("error")
        failed = bool(error) or bool(result.get("is_error")) or item.get("status") == "failed"
        content = result.get("content") or [{"type": "text", "text": json.dumps(error or item.get("aggregated_output", ""))}]
        self.messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": use_id, "name": name, "input": item.get("arguments", item.get("command"))}]})
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use_id, "is_error": failed, "content": content}]})
        self.result.tool_calls += 1
        exp = (result.get("structured_content") or {}).get("exp_id")
        if not isinstance(exp, int):
            exp = submitted_exp_id(name, {"content": content, "is_error": failed}, self.config.submit_tool)
        if is_tool(name, self.config.submit_tool) and not failed and isinstance(exp, int):
            self.result.exp_ids.append(exp)
        if self.result.tool_calls >= self.config.max_tool_turns:
            self.result.stop_reason = "tool_turn_cap"

    def set_usage(self, u: dict[str, Any]) -> None:
        """The session's usage from Codex's running totals (input tokens include the cached ones)."""
        cached = int(u.get("cached_input_tokens") or 0)
        self.result.usage = Usage(tokens_in=int(u.get("input_tokens") or 0) - cached,
                                  tokens_out=int(u.get("output_tokens") or 0), cache_read=cached,
                                  cache_write=int(u.get("cache_write_input_tokens") or 0))
        self.result.cost_usd = cost_usd(self.model, self.result.usage)


def last_token_count(sessions: Path) -> dict[str, Any] | None:
    """Token usage from Codex's session files under `sessions`: the sum of its per-response
    records (written as each reply completes), else the last running total it wrote."""
    summed: dict[str, int] = {}
    total = None
    for path in sorted(sessions.rglob("*.jsonl")) if sessions.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            if '"token_usage_record"' not in line and '"token_count"' not in line:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                payload = record.get("payload") or {}
                if record.get("type") == "token_usage_record":
                    for k, v in (payload.get("usage") or {}).items():
                        summed[k] = summed.get(k, 0) + int(v or 0)
                else:
                    total = (payload.get("info") or {}).get("total_token_usage") or total
    return summed or total
