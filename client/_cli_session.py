"""`CLISession`: one specialist session run by an external agent CLI (the shared loop).

    run()        brief and session start from the MCP prompts (as the bundled client reads
                 them) -> a private dir -> the specialist's endpoint -> the agent's process,
                 under the session's time limit -> its tree killed and checked dead ->
                 the transcript saved (always, in `finally`)
    converse()   the agent-specific part: feed the first message, read what the CLI reports
                 (messages, tool calls, usage, cost) into `messages` and `result`

Subclasses give `agent`, `argv()`, `env()` and `converse()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import traceback
from pathlib import Path
from typing import Any

from client.agent import SessionCancelled, SessionConfig, SessionResult
from client._cli_host import AgentCLISettings, AgentProcess, Endpoint, mcp_endpoint, private_dir


LOG_CHARS = 1 << 20  # how much of an agent's log `after()` reads


async def prompt_text(mcp: Any, name: str) -> str:
    got = await mcp.get_prompt(name)
    return "\n\n".join(getattr(m.content, "text", "") for m in got.messages)


def is_tool(name: str | None, tool: str) -> bool:
    """Whether an agent's name for a tool (`mcp__autoresearch__x`, `autoresearch.x`…) is `tool`."""
    return bool(name) and (name == tool or name.endswith(("__" + tool, "." + tool, "/" + tool)))  # type: ignore[union-attr]


def result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


def submitted_exp_id(name: str | None, block: dict[str, Any], submit_tool: str) -> int | None:
    """The exp id a successful submit call returned, else None."""
    if not is_tool(name, submit_tool) or block.get("is_error"):
        return None
    try:
        data = json.loads(result_text(block.get("content")))
    except ValueError:
        return None
    exp = data.get("exp_id") if isinstance(data, dict) else None
    return exp if isinstance(exp, int) else None


class CLISession:
    """One session of `specialist` by an agent CLI over the search `rt` (see the module docstring)."""

    agent = ""

    def __init__(self, rt: Any, mcp: Any, specialist: str, model: str, config: SessionConfig,
                 cli: AgentCLISettings, source_env: dict[str, str], transcript: Path | None) -> None:
        self.rt, self.mcp, self.specialist, self.model = rt, mcp, specialist, model
        self.config, self.cli, self.source_env, self.transcript = config, cli, source_env, transcript
        self.system = self.first = self.log_tail = self.trace = ""
        self.messages: list[dict[str, Any]] = []
        self.calls: dict[str, str] = {}  # tool_use id -> tool name
        self.usages: dict[str, dict[str, Any]] = {}  # API message id -> its usage
        self.init: dict[str, Any] = {}
        self.turns = 0
        self.survivors: list[int] = []
        self.result = SessionResult(specialist, transcript=str(transcript) if transcript else None)

    async def run(self) -> SessionResult:
        try:
            self.system = await prompt_text(self.mcp, self.config.brief_prompt)
            self.first = await prompt_text(self.mcp, self.config.start_prompt)
            await self.run_agent()
        except asyncio.CancelledError:
            raise SessionCancelled(self.result) from None
        except Exception as e:  # boundary: a failed session is recorded, never raised
            self.trace = traceback.format_exc()
            self.result.error = self.result.error or f"{type(e).__name__}: {e}"[:1500] + self._log_hint()
            self.result.stop_reason = self.result.stop_reason or "error"
        finally:
            self.save()
        return self.result

    async def run_agent(self) -> None:
        with private_dir(self.cli.scratch_root, f"{self.agent}-{self.specialist}") as home:
            async with mcp_endpoint(self.rt, self.specialist, self.cli.transport) as endpoint:
                proc = AgentProcess(self.argv(home, endpoint), self.env(home, endpoint), home, home / "agent.log")
                try:
                    async with asyncio.timeout(self.config.time_limit_s):
                        await self.converse(proc, self.first)
                except TimeoutError:
                    self.result.stop_reason = "time_limit"
                    await proc.finish(self.cli.exit_wait_s, self.cli.kill_timeout_s, term=True)
                finally:
                    self.survivors = proc.kill(self.cli.kill_timeout_s)
                    self.after(proc.log_tail(LOG_CHARS), home)
                    self.log_tail = proc.log_tail()
        if self.survivors:
            self.result.error = f"{len(self.survivors)} process(es) of the agent survived the kill: {self.survivors}"
        elif not self.result.stop_reason:
            self.result.stop_reason = "error"
            self.result.error = self.result.error or "the agent exited without a result" + self._log_hint()

    def _log_hint(self) -> str:
        tail = self.log_tail.strip()[-400:]
        return f" (agent log: {tail})" if tail else ""

    # ---------------------------------------------------------------- agent-specific
    @staticmethod
    def cli_path() -> Path:
        """The agent's executable. Raises FileNotFoundError, saying how to install it."""
        raise NotImplementedError

    def argv(self, home: Path, endpoint: Endpoint) -> list[str]:
        raise NotImplementedError

    def env(self, home: Path, endpoint: Endpoint) -> dict[str, str]:
        raise NotImplementedError

    async def converse(self, proc: AgentProcess, first: str) -> None:
        raise NotImplementedError

    def after(self, log: str, home: Path) -> None:
        """What the agent's log (stderr) and its private dir add to the record once it is dead
        (nothing by default)."""

    # ---------------------------------------------------------------- records
    @staticmethod
    def write_private(path: Path, text: str) -> None:
        """A file only its owner can read (it may hold the specialist's token)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)

    def save(self) -> None:
        if self.transcript is None:
            return
        self.transcript.parent.mkdir(parents=True, exist_ok=True)
        r = self.result
        data = {"specialist": self.specialist, "agent": self.agent, "model": self.model or self.init.get("model"),
                "system": self.system, "init": self.init,
                "messages": [{"role": "user", "content": self.first}, *self.messages],
                "result": r.__dict__ | {"usage": r.usage.__dict__}, "turns": self.turns,
                "survivors": self.survivors, "agent_log_tail": self.log_tail, "traceback": self.trace}
        self.transcript.write_text(json.dumps(data, indent=1, default=str))
