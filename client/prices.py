"""Model prices in USD per million tokens, and the cost of a session's usage.

Cache writes (5-minute TTL) cost 1.25x the input price and cache reads 0.1x, per Anthropic's
published pricing. Models not in the table (newer families included) must be priced
by the user (`autoresearch run --price MODEL=IN,OUT`, which calls `register_prices`). A model
that matches no entry costs 0.0 and `is_priced` says so, so a spend cap never silently believes
an unknown model is free: `run` refuses --budget-usd with a model it cannot price (OpenAI's,
for `--agent codex`, are not in the table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from client.llm import Usage

# prefix -> (input, output) USD per MTok; longest matching prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-8": (5.0, 25.0),
    "claude-opus-4-7": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}
CACHE_WRITE_MULT = 1.25
CACHE_READ_MULT = 0.10
WEB_SEARCH_USD = 0.01  # per search request


def _match(model: str) -> tuple[float, float] | None:
    best = max((p for p in PRICES if model.startswith(p)), key=len, default=None)
    return PRICES[best] if best else None


def is_priced(model: str) -> bool:
    return _match(model) is not None


def register_prices(table: dict[str, tuple[float, float]]) -> None:
    PRICES.update(table)


def cost_usd(model: str, usage: Usage) -> float:
    price = _match(model)
    if price is None:
        return 0.0
    p_in, p_out = price
    total = (
        usage.tokens_in * p_in
        + usage.tokens_out * p_out
        + usage.cache_write * p_in * CACHE_WRITE_MULT
        + usage.cache_read * p_in * CACHE_READ_MULT
    ) / 1e6
    return total + usage.web_searches * WEB_SEARCH_USD
