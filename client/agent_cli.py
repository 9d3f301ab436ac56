"""`--agent claude-code[:MODEL]` and `--agent codex[:MODEL]`: existing agent CLIs as specialists.

The supervisor runs each session of a specialist as one headless run of the CLI, connected to
the search's specialist servers as that specialist (`_cli_host.py`: private dir, environment
allow-list, endpoint, process tree), under the supervisor's limits unchanged (budgets,
deadline, patience, spend cap, stop, resume, the empty-session back-off) and the session's
own (`SessionConfig`: turn cap, time limit).

    claude_code.py   Claude Code through the claude-agent-sdk
    codex.py         the Codex CLI (`codex exec --json`)
    _cli_session.py  the shared session: prompts, time limit, kill, transcript
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from client._cli_host import AgentCLISettings

__all__ = ["AGENTS", "AgentCLISettings", "cli_factory"]

AGENTS = ("claude-code", "codex")


def cli_factory(choice: Any, rt: Any, source: Mapping[str, str] | None = None) -> Any:
    """The supervisor's session factory for `choice.kind` in `AGENTS`.

    `source` is the environment the agents' allow-list draws from (default: this process's,
    read once here, at the entry point).
    """
    env = dict(os.environ if source is None else source)
    if choice.kind == "claude-code":
        from client.claude_code import ClaudeCodeSession as Session
    else:
        from client.codex import CodexSession as Session  # type: ignore[assignment]
    try:
        Session.cli_path()  # found (or, for Codex, installed from npm) before any session starts
    except FileNotFoundError as exc:
        raise ValueError(f"--agent {choice.kind}: {exc}") from exc
    transcripts = rt.layout.transcripts

    async def session(specialist: str, client: Any, n: int) -> Any:
        model = choice.models.get(specialist, choice.model)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = transcripts / f"{stamp}-{specialist}-{n:03d}.json"
        return await Session(rt, client, specialist, model, choice.session, choice.cli, env, path).run()

    session.model = choice.model or choice.kind  # type: ignore[attr-defined]
    return session
