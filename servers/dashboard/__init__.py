"""The web dashboard of a search (or a comparison of several): read-only, live, self-contained.

    build_dashboard([state_dir, ...]) -> Dashboard app (ASGI) + the opened sources

`autoresearch dashboard` serves it alone; `autoresearch serve --transport http` serves it at
`/` beside the MCP endpoint. See `_gate` for how a browser gets in (a token once, then a
cookie), `app` for the routes, `views` and `trial` for what the pages show, and
`lineage.live` for how it stays fast while the search grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette

from servers.auth import dashboard_tokens
from servers.dashboard._sources import Sources
from servers.dashboard.app import POLL_MS, build_app

__all__ = ["build_dashboard", "Sources"]


def build_dashboard(states: Sequence[Path], *, poll_ms: int = POLL_MS, min_interval: float = 0.5,
                    ) -> tuple[Starlette, Sources]:
    """The dashboard of these state directories, open to their tokens (`dashboard_tokens`).

    Raises:
        LineageError: a directory holds no search.
        ValueError: no directory given.
    """
    if not states:
        raise ValueError("give at least one --state directory")
    sources = Sources.open(states, min_interval=min_interval)
    tokens: dict[str, str] = {}
    for i, path in enumerate(states):
        tokens.update({f"{i}:{name}": tok for name, tok in dashboard_tokens(Path(path)).items()})
    # Says where tokens are listed, not where the search lives: a 401 is for anyone who asks.
    how_to = "`autoresearch tokens --state DIR` lists the tokens of the search in DIR"
    return build_app(sources, tokens, how_to, poll_ms=poll_ms), sources
