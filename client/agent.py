"""One specialist session: a fresh conversation driven by a model over MCP tools.

The loop reads on one screen: `run()` loads the brief and the lineage view, then `step()`s;
each step is `query()` (one model call) then `execute_actions()` (the tool calls, through the
MCP client, results fed back). It stops when the model ends its turn, at the tool-turn cap,
or at the session's time limit, and always saves the transcript. A session cancelled mid-way
(at the end of a stop's grace period) raises `SessionCancelled`, which carries what it had used
and submitted by then, so its spend is still recorded and counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from client.llm import LLM, Reply, Usage


class SessionConfig(BaseModel):
    max_tool_turns: int = Field(40, ge=1, description="model turns that call tools, at most")
    time_limit_s: float = Field(1800.0, gt=0, description="wall-clock limit of one session")
    brief_prompt: str = Field("blackboard_specialist_brief", description="MCP prompt: system prompt")
    start_prompt: str = Field("blackboard_session_start", description="MCP prompt: first user message (the lineage view)")
    submit_tool: str = Field("submission_submit_trial", description="tool whose result names the trial")
    max_result_chars: int = Field(60_000, description="tool results are cut to this for the model")


@dataclass
class SessionResult:
    specialist: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    tool_calls: int = 0
    exp_ids: list[int] = field(default_factory=list)
    stop_reason: str = ""
    error: str = ""
    transcript: str | None = None  # where the session's transcript is saved


class SessionCancelled(asyncio.CancelledError):
    """The cancellation of a session, carrying its `result` as it stood: the tokens, cost and
    submissions of the replies it had received (a reply still in flight is not known)."""

    def __init__(self, result: SessionResult) -> None:
        super().__init__(f"session of {result.specialist!r} cancelled")
        result.stop_reason = "cancelled"
        self.result = result


def mcp_tools_for_model(tools: list[Any]) -> list[dict[str, Any]]:
    """MCP tool listings -> the Messages API tool format (never re-implemented here)."""
    return [
        {"name": t.name, "description": t.description or "", "input_schema": t.input_schema}
        for t in tools
    ]


def result_text(result: Any, limit: int) -> str:
    parts = [getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text"]
    text = "\n".join(parts) or json.dumps(result.structured_content or {})
    return text if len(text) <= limit else text[:limit] + f"\n[... cut at {limit} characters]"


class SpecialistSession:
    """Run one session for `specialist` with `llm` over a connected fastmcp `Client`."""

    def __init__(self, llm: LLM, mcp: Any, specialist: str, config: SessionConfig | None = None,
                 transcript: Path | None = None) -> None:
        self.llm, self.mcp, self.specialist = llm, mcp, specialist
        self.config = config or SessionConfig()
        self.transcript = transcript
        self.messages: list[dict[str, Any]] = []
        self.result = SessionResult(specialist, transcript=str(transcript) if transcript else None)
        self.system, self.tools = "", []

    async def run(self) -> SessionResult:
        start = time.monotonic()
        try:
            self.system = await self._prompt(self.config.brief_prompt)
            self.tools = mcp_tools_for_model(await self.mcp.list_tools())
            self.messages = [{"role": "user", "content": await self._prompt(self.config.start_prompt)}]
            turns = 0
            while await self.step():
                turns += 1
                if turns >= self.config.max_tool_turns:
                    self.result.stop_reason = "tool_turn_cap"
                    break
                if time.monotonic() - start > self.config.time_limit_s:
                    self.result.stop_reason = "time_limit"
                    break
        except asyncio.CancelledError:
            raise SessionCancelled(self.result) from None
        except Exception as e:  # boundary: a failed session is recorded, never raised
            self.result.error = f"{type(e).__name__}: {e}"
            self.result.stop_reason = self.result.stop_reason or "error"
        finally:
            self.save()
        return self.result

    async def _prompt(self, name: str) -> str:
        got = await self.mcp.get_prompt(name)
        return "\n\n".join(getattr(m.content, "text", "") for m in got.messages)

    async def step(self) -> bool:
        """One model turn and its tool calls. False when the model ended its turn."""
        reply = await self.query()
        self.messages.append({"role": "assistant", "content": reply.content})
        if reply.stop_reason != "tool_use" or not reply.tool_uses():
            self.result.stop_reason = reply.stop_reason
            return False
        self.messages.append({"role": "user", "content": await self.execute_actions(reply)})
        return True

    async def query(self) -> Reply:
        reply = await self.llm.query(self.system, self.tools, self.messages)
        self.result.usage.add(reply.usage)
        self.result.cost_usd = self.llm.cost(self.result.usage)
        return reply

    async def execute_actions(self, reply: Reply) -> list[dict[str, Any]]:
        results = []
        for use in reply.tool_uses():
            self.result.tool_calls += 1
            res = await self.mcp.call_tool(use["name"], use.get("input") or {}, raise_on_error=False)
            if use["name"] == self.config.submit_tool and not res.is_error:
                exp = (res.structured_content or {}).get("exp_id")
                if isinstance(exp, int):
                    self.result.exp_ids.append(exp)
            results.append({
                "type": "tool_result", "tool_use_id": use["id"], "is_error": bool(res.is_error),
                "content": [{"type": "text", "text": result_text(res, self.config.max_result_chars)}],
            })
        return results

    def save(self) -> None:
        if self.transcript is None:
            return
        self.transcript.parent.mkdir(parents=True, exist_ok=True)
        data = {"specialist": self.specialist, "model": self.llm.model, "system": self.system,
                "messages": self.messages, "result": self.result.__dict__ | {"usage": self.result.usage.__dict__}}
        self.transcript.write_text(json.dumps(data, indent=1, default=str))
