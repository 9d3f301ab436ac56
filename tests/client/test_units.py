"""Small pure pieces of the client: durations, prices, agent choice."""

from __future__ import annotations

import pytest
import typer

from client.cli_run import parse_duration
from client.llm import Usage
from client.prices import cost_usd, is_priced
from client.run import AgentChoice


def test_parse_duration():
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45 and parse_duration(None) is None
    with pytest.raises(typer.BadParameter, match="duration"):
        parse_duration("2 hours")


def test_cost_counts_cache_reads_and_writes():
    u = Usage(tokens_in=1_000_000, tokens_out=100_000, cache_read=2_000_000, cache_write=400_000, web_searches=3)
    # opus-4-8: $5 in, $25 out; cache write 1.25x, read 0.1x; $0.01 per search
    assert cost_usd("claude-opus-4-8", u) == pytest.approx(5 + 2.5 + 2.5 + 1.0 + 0.03)
    assert not is_priced("some-unknown-model") and cost_usd("some-unknown-model", u) == 0.0


def test_agent_choice_parsing():
    assert AgentChoice.parse("scripted").kind == "scripted"
    c = AgentChoice.parse("anthropic:claude-opus-4-8", models={"arch": "claude-haiku-4-5"})
    assert (c.kind, c.model, c.models["arch"]) == ("anthropic", "claude-opus-4-8", "claude-haiku-4-5")
    with pytest.raises(ValueError, match="anthropic:MODEL"):
        AgentChoice.parse("openai:gpt")
