"""The scripted proposer: a real, LLM-free specialist that acts only through the MCP tools.

One session = one trial. It reads the lineage, picks a parent (the best, sometimes another
kept trial), changes one of the task's declared tunable constants, avoids edits already
tried from that parent, runs preflight, submits and waits. Most changes are local steps:
each tunable's step grows after keeps, shrinks after misses and recovers to its base size
once it has shrunk to a third of it, so it never freezes; a step follows the last kept
direction, else the tunable's `hint` (the direction the task's knowledge names), else a coin.
Some changes jump anywhere in the declared range (log-uniform on a log scale), so the search
can reach values far from the start. Everything is derived from the lineage rows (sessions
are fresh; the lineage is the only memory) and a seeded generator, so a seed fixes the run.

Hypotheses are written in a fixed form so later sessions can read them back:
    "set LR 0.003 -> 0.0045 (x1.50)"
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from client.agent import SessionResult, result_text
from tasks.base import Tunable, parse_tunables

_EDIT = re.compile(r"^set (?P<name>[A-Z][A-Z0-9_]*) (?P<old>\S+) -> (?P<new>\S+)")


@dataclass(frozen=True)
class ToolNames:
    list_trials: str = "blackboard_list_trials"
    view: str = "blackboard_get_lineage_view"
    rebase: str = "snapshot_rebase_to"
    list_workspace: str = "submission_list_workspace"
    read: str = "submission_read_workspace_file"
    edit: str = "submission_edit_workspace_file"
    preflight: str = "submission_preflight"
    submit: str = "submission_submit_trial"
    wait: str = "submission_wait_trial"


@dataclass(frozen=True)
class Edit:
    name: str
    old: float
    new: float
    parent: int | None
    status: str


def past_edits(rows: list[dict[str, Any]]) -> list[Edit]:
    """Scripted edits found in lineage rows (hypotheses of the form 'set NAME a -> b')."""
    out = []
    for r in rows:
        m = _EDIT.match(r.get("hypothesis") or "")
        if m:
            try:
                out.append(Edit(m["name"], float(m["old"]), float(m["new"]), r.get("parent_exp"), r.get("status", "")))
            except ValueError:
                continue
    return out


JUMP = 0.25  # chance that a proposal draws anywhere in a tunable's range
JUMP_AFTER_KEEP = 0.1  # the same, for a tunable whose kept direction is known
HINT_TRUST = 0.75  # chance that a step without a kept direction follows the tunable's hint


def step_factor(name: str, edits: list[Edit], base: float = 0.3) -> float:
    """Multiplicative step for `name`: x1.6 after a keep, x0.85 after a miss, and back to
    `base` once misses have shrunk it below a third of `base` (it recovers, never freezes)."""
    step = base
    for e in edits:
        if e.name != name or e.status in ("queued", "running", "cancelled", "infra_error"):
            continue
        if e.status == "keep":
            step = min(1.5, step * 1.6)
        else:
            step *= 0.85
            if step < base / 3:
                step = base
    return step


def propose(tunables: list[Tunable], edits: list[Edit], parent: int | None, rng: random.Random,
            jump: float = JUMP) -> tuple[Tunable, float] | None:
    """Pick a tunable and a new value not yet tried from `parent` (a jump or a local step)."""
    tried = {(e.name, _canon(e.new)) for e in edits if e.parent == parent}
    wins = {t.name: sum(e.status == "keep" for e in edits if e.name == t.name) for t in tunables}
    order = sorted(tunables, key=lambda t: -(wins[t.name] + rng.random() * 1.5))
    for t in order:
        fresh = lambda v: v is not None and v != t.value and (t.name, _canon(v)) not in tried  # noqa: E731
        keeps = [e for e in edits if e.name == t.name and e.status == "keep"]
        if rng.random() < (JUMP_AFTER_KEEP if keeps and jump else jump):
            for _ in range(6):
                value = _draw(t, rng)
                if fresh(value):
                    return t, value
        direction = _direction(t, keeps)
        for attempt in range(6):
            follow = direction is not None and attempt % 2 == 0 and (keeps or rng.random() < HINT_TRUST)
            sign = direction if follow else rng.choice((-1.0, 1.0))
            value = _mutate(t, step_factor(t.name, edits) * (1 + 0.5 * attempt), sign, rng)
            if fresh(value):
                return t, value
    return None


def _direction(t: Tunable, keeps: list[Edit]) -> float | None:
    """+1 / -1: the last kept change's direction, else the tunable's hint; None: no prior."""
    if keeps:
        return math.copysign(1.0, keeps[-1].new - keeps[-1].old)
    return {"higher": 1.0, "lower": -1.0}.get(t.hint or "")


def _draw(t: Tunable, rng: random.Random) -> float:
    """A value anywhere in the declared range: log-uniform on a log scale, else uniform."""
    if t.log and t.low > 0:
        raw = math.exp(rng.uniform(math.log(t.low), math.log(t.high)))
    else:
        raw = rng.uniform(t.low, t.high)
    if t.kind == "int":
        return int(min(max(round(raw), math.ceil(t.low)), math.floor(t.high)))
    return float(min(max(float(f"{raw:.4g}"), t.low), t.high))


def _canon(x: float) -> str:
    return f"{x:.6g}"


def _mutate(t: Tunable, step: float, sign: float, rng: random.Random) -> float | None:
    scale = math.exp(sign * step * (0.5 + rng.random()))
    raw = t.value * scale if t.value != 0 else sign * step * (t.high - t.low)
    if t.kind == "int":
        value = int(round(raw))
        if value == t.value:
            value = int(t.value + (1 if sign > 0 else -1))
    else:
        value = float(f"{raw:.4g}")
    value = min(max(value, t.low), t.high)
    return int(value) if t.kind == "int" else float(value)


def _line_for(t: Tunable, source: str, new: float) -> tuple[str, str]:
    old_line = source.splitlines()[t.line - 1]
    new_text = str(int(new)) if t.kind == "int" else repr(float(new))
    new_line = re.sub(r"=\s*[-+0-9.eE_]+", f"= {new_text}", old_line, count=1)
    return old_line, new_line


class ScriptedAgent:
    """Run one scripted session over a connected fastmcp `Client`."""

    def __init__(self, mcp: Any, specialist: str, *, entrypoint: str, seed: int | None = None,
                 explore: float = 0.2, names: ToolNames | None = None, wait_s: float = 50.0) -> None:
        self.mcp, self.specialist, self.entrypoint = mcp, specialist, entrypoint
        self.rng = random.Random(seed)
        self.explore, self.names, self.wait_s = explore, names or ToolNames(), wait_s
        self.result = SessionResult(specialist, stop_reason="end_turn")

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        self.result.tool_calls += 1
        res = await self.mcp.call_tool(name, args, raise_on_error=False)
        if res.is_error:
            raise RuntimeError(f"{name}: {result_text(res, 500)}")
        return res.structured_content or {}

    async def run(self) -> SessionResult:
        try:
            await self._session()
        except Exception as e:  # boundary: the session is recorded, not raised
            self.result.error, self.result.stop_reason = f"{type(e).__name__}: {e}", "error"
        return self.result

    async def _rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.call(self.names.list_trials, {"offset": offset, "limit": 100, "newest_first": False})
            rows += page.get("trials", [])
            offset = page.get("next_offset")
        return rows

    async def _read(self, path: str) -> str:
        lines: list[str] = []
        offset: int | None = 1
        while offset is not None:
            part = await self.call(self.names.read, {"path": path, "offset": offset, "limit": 2000})
            lines.append(part["content"])
            offset = part.get("next_offset")
        return "".join(lines)

    async def _session(self) -> None:
        await self.call(self.names.view, {})
        rows = await self._rows()
        kept = [r for r in rows if r.get("status") in ("keep", "baseline")]
        parent = self._pick_parent(rows, kept)
        await self.call(self.names.rebase, {"exp_id": parent})
        source = await self._read(self.entrypoint)
        choice = propose(parse_tunables(source), past_edits(rows), parent, self.rng)
        if choice is None:
            self.result.stop_reason = "nothing_new_to_try"
            return
        tunable, value = choice
        old_line, new_line = _line_for(tunable, source, value)
        await self.call(self.names.edit, {"path": self.entrypoint, "old_text": old_line, "new_text": new_line})
        check = await self.call(self.names.preflight, {})
        ratio = f" (x{value / tunable.value:.2f})" if tunable.value else ""
        hypothesis = f"set {tunable.name} {_canon(tunable.value)} -> {_canon(value)}{ratio}"
        notes = f"scripted proposer; parent exp {parent}; preflight ok={check.get('ok')}"
        sub = await self.call(self.names.submit, {"hypothesis": hypothesis, "expected_delta": 0.0, "notes": notes})
        self.result.exp_ids.append(int(sub["exp_id"]))
        while True:
            row = await self.call(self.names.wait, {"exp_id": int(sub["exp_id"]), "timeout_s": self.wait_s})
            if row.get("finished"):
                return

    def _pick_parent(self, rows: list[dict[str, Any]], kept: list[dict[str, Any]]) -> int:
        """The best (inferred from the kept rows' deltas), sometimes another kept trial."""
        scored = [r for r in kept if r.get("score") is not None]
        if not scored:
            return 0
        lower = not any((r.get("delta") or 0) > 0 for r in scored if r.get("status") == "keep")
        best = (min if lower else max)(scored, key=lambda r: r["score"])
        if len(scored) > 1 and self.rng.random() < self.explore:
            return int(self.rng.choice([r for r in scored if r is not best])["exp_id"])
        return int(best["exp_id"])
