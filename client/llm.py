"""The model seam: one protocol, the Anthropic implementation, and a scripted one for tests.

    LLM.query(system, tools, messages) -> Reply

`AnthropicLLM` calls the Messages API through the official SDK (its own retries on 408/409/
429/5xx, prompt caching on the system prompt and the tool list, optional server-side web
search). `ScriptedLLM` replays a list of replies and ships here so any test can drive the
real loop without a network (mini-swe-agent's DeterministicModel habit).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from client.prices import cost_usd


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    web_searches: int = 0

    def add(self, other: Usage) -> None:
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cache_read += other.cache_read
        self.cache_write += other.cache_write
        self.web_searches += other.web_searches


@dataclass
class Reply:
    """One model turn: content blocks as plain dicts, why it stopped, what it used."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage = field(default_factory=Usage)

    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    def text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.content if b.get("type") == "text")


class LLM(Protocol):
    model: str

    async def query(
        self, system: str, tools: Sequence[dict[str, Any]], messages: list[dict[str, Any]]
    ) -> Reply:
        """One Messages call. Raises only after the SDK's own retries are spent."""

    def cost(self, usage: Usage) -> float:
        """USD for `usage` at this model's prices (0.0 when the model is not priced)."""


class AnthropicLLM:
    """Claude through `anthropic.AsyncAnthropic`, with prompt caching and optional web search."""

    def __init__(
        self, model: str, *, api_key: str | None = None, base_url: str | None = None,
        max_tokens: int = 8192, max_retries: int = 4, web_search: bool = False,
        timeout_s: float = 600.0,
    ) -> None:
        import anthropic

        self.model = model
        self.max_tokens = max_tokens
        self.web_search = web_search
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or os.environ.get("ANTHROPIC_API_KEY"), base_url=base_url,
            max_retries=max_retries, timeout=timeout_s,
        )

    def _tools(self, tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = [dict(t) for t in tools]
        if out:  # one cache breakpoint after the last MCP tool caches the whole tool list
            out[-1] = {**out[-1], "cache_control": {"type": "ephemeral"}}
        if self.web_search:
            out.append({"type": "web_search_20250305", "name": "web_search", "max_uses": 5})
        return out

    async def query(
        self, system: str, tools: Sequence[dict[str, Any]], messages: list[dict[str, Any]]
    ) -> Reply:
        resp = await self._client.messages.create(
            model=self.model, max_tokens=self.max_tokens, messages=messages,
            system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            tools=self._tools(tools),
        )
        u = resp.usage
        server = getattr(u, "server_tool_use", None)
        usage = Usage(
            tokens_in=u.input_tokens, tokens_out=u.output_tokens,
            cache_read=u.cache_read_input_tokens or 0, cache_write=u.cache_creation_input_tokens or 0,
            web_searches=(getattr(server, "web_search_requests", 0) or 0) if server else 0,
        )
        content = [b.model_dump(exclude_none=True) for b in resp.content]
        return Reply(content=content, stop_reason=resp.stop_reason or "end_turn", usage=usage)

    def cost(self, usage: Usage) -> float:
        return cost_usd(self.model, usage)


ScriptStep = dict[str, Any] | Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedLLM:
    """Replays scripted replies; a step may be a callable of the conversation so far.

    Each step is `{"content": [...], "stop_reason": "tool_use"|"end_turn"}` (or a function
    returning one). When the script runs out, it ends the turn.
    """

    def __init__(self, steps: Sequence[ScriptStep], model: str = "scripted") -> None:
        self.model = model
        self._steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    async def query(
        self, system: str, tools: Sequence[dict[str, Any]], messages: list[dict[str, Any]]
    ) -> Reply:
        self.calls.append({"system": system, "tools": list(tools), "messages": list(messages)})
        if not self._steps:
            return Reply([{"type": "text", "text": "done"}], "end_turn")
        step = self._steps.pop(0)
        data = step(messages) if callable(step) else step
        return Reply(list(data["content"]), data.get("stop_reason", "end_turn"), Usage(tokens_in=1, tokens_out=1))

    def cost(self, usage: Usage) -> float:
        return 0.0
