"""`run_search`: initialise a search when its state is new, then run it to a stop condition.

The same call resumes: on an existing state directory it checks the configuration matches,
clears a stale stop request, lets the evaluator workers reconcile rows left running by a
dead process, and continues (ids continue; budgets count what was already spent).
"""

from __future__ import annotations

import asyncio
import random
import signal
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.agent import SessionConfig, SpecialistSession
from client.agent_cli import AGENTS, AgentCLISettings, cli_factory
from client.mutation import MutationProposer
from client.supervisor import Progress, RunLimits, SessionFactory, Supervisor
from lineage.state import StateDir


class ConfigMismatchError(ValueError):
    """The existing search was created with another task, roster or arm."""


@dataclass
class AgentChoice:
    """`scripted`, `optuna[:SAMPLER]`, `anthropic:MODEL`, `claude-code[:MODEL]` or `codex[:MODEL]`,
    with per-specialist model overrides (`cli`: how the agent CLIs run, see client/agent_cli.py)."""

    kind: str
    model: str = ""
    models: dict[str, str] = field(default_factory=dict)
    web_search: bool = False
    base_url: str | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    cli: AgentCLISettings = field(default_factory=AgentCLISettings)

    @classmethod
    def parse(cls, text: str, **kw: Any) -> AgentChoice:
        if text == "scripted":
            return cls("scripted", "scripted", **kw)
        kind, _, model = text.partition(":")
        if kind == "optuna":
            from client.optuna_agent import check_sampler

            check_sampler(model or "tpe")
            return cls("optuna", f"optuna:{model or 'tpe'}", **kw)
        if kind in AGENTS:
            choice = cls(kind, model, **kw)
            cli = choice.cli  # --web-search and a base URL reach the agent CLIs too
            choice.cli = cli.model_copy(update={"web_search": choice.web_search or cli.web_search,
                                                "base_url": choice.base_url or cli.base_url})
            return choice
        if kind != "anthropic" or not model:
            raise ValueError(f"--agent {text!r}: use 'scripted', 'optuna[:SAMPLER]' (tpe, random, cmaes, gp), "
                             "'anthropic:MODEL' (e.g. anthropic:claude-opus-4-8), 'claude-code[:MODEL]' "
                             "or 'codex[:MODEL]'")
        return cls("anthropic", model, **kw)


def session_factory(choice: AgentChoice, rt: Any, seed: int | None = None) -> SessionFactory:
    """How the supervisor starts one session of a specialist."""
    transcripts = rt.layout.transcripts
    base_seed = seed if seed is not None else random.randrange(1 << 30)
    if choice.kind in ("scripted", "optuna"):
        return _proposer_factory(choice, rt, base_seed)
    if choice.kind in AGENTS:
        return cli_factory(choice, rt)

    from client.llm import AnthropicLLM

    llms: dict[str, AnthropicLLM] = {}

    async def with_llm(specialist: str, client: Any, n: int) -> Any:
        model = choice.models.get(specialist, choice.model)
        llm = llms.setdefault(model, AnthropicLLM(model, base_url=choice.base_url, web_search=choice.web_search))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = transcripts / f"{stamp}-{specialist}-{n:03d}.json"
        return await SpecialistSession(llm, client, specialist, choice.session, path).run()

    with_llm.model = choice.model  # type: ignore[attr-defined]
    return with_llm


def _proposer_factory(choice: AgentChoice, rt: Any, base_seed: int) -> SessionFactory:
    """LLM-free sessions; in a roles search each changes only the constants its role owns."""
    common = {"entrypoint": rt.task.entrypoint, "lower_is_better": rt.config.lower_is_better}

    async def proposer(specialist: str, client: Any, n: int) -> Any:
        owner = specialist if rt.config.arm == "roles" else None
        if choice.kind == "optuna":
            from client.optuna_agent import OptunaAgent

            sampler = choice.model.partition(":")[2]
            return await OptunaAgent(client, specialist, sampler=sampler, seed=base_seed, owner=owner, **common).run()
        seed = zlib.crc32(f"{base_seed}:{specialist}:{n}".encode())
        return await MutationProposer(client, specialist, seed=seed, owner=owner, **common).run()

    proposer.model = choice.model  # type: ignore[attr-defined]
    return proposer


def ensure_search(state_dir: Path, task: str, *, roster: str, lineage: bool, backend: str | None = None,
                  backend_options: dict[str, str] | None = None, database_url: str | None = None,
                  **init_kw: Any) -> bool:
    """Create the search if the state is new; check it matches otherwise. True if created.

    `backend` and `backend_options` None: a new search runs locally, a resumed one keeps its own.
    `database_url`: where a new search's lineage lives; a resumed one is read where it was made.
    """
    from servers.app.init import init_search

    if not StateDir.exists(state_dir):
        init_search(task, state_dir, roster=roster, lineage=lineage, backend=backend or "local",
                    backend_options=backend_options, database_url=database_url, **init_kw)
        return True
    state = StateDir.open(state_dir)
    try:
        cfg = state.search.config
    finally:
        state.close()
    from tasks.registry import get_task

    asked, held = get_task(task).name, get_task(cfg.task).name
    profile = init_kw.get("profile", "")
    problems = [
        f"task {held!r} (asked: {asked!r})" if held != asked else "",
        f"profile {cfg.profile or 'none'!r} (asked: {profile or 'none'!r})" if cfg.profile != profile else "",
        f"roster {cfg.arm!r} (asked: {roster!r})" if cfg.arm != roster else "",
        f"lineage {'on' if cfg.lineage else 'off'}" if cfg.lineage != lineage else "",
        f"backend {cfg.backend!r} (asked: {backend!r})" if backend is not None and cfg.backend != backend else "",
        f"backend options {cfg.backend_options} (asked: {backend_options})"
        if backend_options is not None and cfg.backend_options != backend_options else "",
    ]
    if any(problems):
        raise ConfigMismatchError(
            f"{state_dir} holds a search with {', '.join(p for p in problems if p)}; "
            "rerun with the same options to resume it, or choose a new --state directory"
        )
    return False


async def run_search(
    state_dir: Path, choice: AgentChoice, limits: RunLimits, *, slots: int = 1, seed: int | None = None,
    on_tick: Callable[[Supervisor], None] | None = None, specialists: list[str] | None = None,
) -> Progress:
    """Run (or resume) the search in `state_dir` until a stop condition; returns its progress."""
    from fastmcp import Client

    from servers.app.runtime import SearchRuntime
    from servers.suite import SPECIALIST_SERVERS, build_suite

    rt = SearchRuntime.open(state_dir, workers=slots)
    # the supervisor has every accepted trial evaluated (or, at the deadline, cancelled) before
    # the workers stop; this bounds only what still runs then (an evaluator job)
    rt.worker_grace_s = limits.grace_s
    if limits.trials is not None and rt.config.max_trials != limits.trials:
        rt.store.update_search_config(rt.search_id, rt.config.model_copy(update={"max_trials": limits.trials}))
        rt.config = rt.store.get_search(rt.search_id).config
    sup = Supervisor(rt, session_factory(choice, rt, seed), limits,
                     lambda name: Client(build_suite(rt, name, servers=SPECIALIST_SERVERS)), only=specialists)
    if sup.clear_stale_stop():
        rt.store.record_event(rt.search_id, "stale_stop_cleared")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.on_signal, sig)
    try:
        async with rt.running():
            ticker = asyncio.create_task(_tick(sup, on_tick)) if on_tick else None
            progress = await sup.run()
            if ticker:
                ticker.cancel()
                on_tick(sup)  # the final frame says how it ended
        return progress
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        rt.close()


async def _tick(sup: Supervisor, on_tick: Callable[[Supervisor], None]) -> None:
    while True:
        on_tick(sup)
        await asyncio.sleep(0.5)
