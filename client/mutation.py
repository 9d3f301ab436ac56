"""The mutation proposer (`--agent scripted`, the scripted-baseline arm): a real, LLM-free
specialist that acts only through the MCP tools. (Not a script: `client.llm.ScriptedLLM` is the
test double that replays one.)

One session = one trial. It reads the lineage, picks a parent (the best, sometimes another
kept trial), changes one of the task's declared tunable constants, avoids edits already
tried from that parent, runs preflight, submits and waits. Most changes are local steps:
each tunable's step grows after keeps, shrinks after misses and recovers to its base size
once it has shrunk to a third of it, so it never freezes; a step follows the last kept
direction, else the tunable's `hint` (the direction the task's knowledge names), else a coin.
Some changes jump anywhere in the declared range (log-uniform on a log scale), so the search
can reach values far from the start; a tunable with a direction mostly jumps on that side of
its value, half of the time while no keep has told it otherwise (the knowledge's wins, "a few
epochs", are far from the start, not one x0.8 step away). Everything is derived from the lineage rows (sessions
are fresh; the lineage is the only memory) and a seeded generator, so a seed fixes the run.
In a roles search it changes only the constants its role owns (client/proposer.py).

Hypotheses are written in a fixed form so later sessions can read them back:
    "set LR 0.003 -> 0.0045 (x1.50)"
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from client.proposer import UNSCORED, Change, ToolSession, best_row, canon
from tasks.base import Tunable

_EDIT = re.compile(r"^set (?P<name>[A-Z][A-Z0-9_]*) (?P<old>\S+) -> (?P<new>\S+)")


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
HINT_JUMP = 0.5  # the same, for a hinted tunable with no keep yet: try far along the hint
DIRECTED = 0.8  # chance that a jump of a tunable with a direction stays on that side of its value
HINT_TRUST = 0.75  # chance that a step without a kept direction follows the tunable's hint
HINT_FIRST = 0.5  # a hinted tunable's head start in the order tunables are tried: the knowledge names its lever


def step_factor(name: str, edits: list[Edit], base: float = 0.3) -> float:
    """Multiplicative step for `name`: x1.6 after a keep, x0.85 after a miss, and back to
    `base` once misses have shrunk it below a third of `base` (it recovers, never freezes)."""
    step = base
    for e in edits:
        if e.name != name or e.status in UNSCORED:
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
    tried = {(e.name, canon(e.new)) for e in edits if e.parent == parent}
    wins = {t.name: sum(e.status == "keep" for e in edits if e.name == t.name) for t in tunables}
    order = sorted(tunables, key=lambda t: -(wins[t.name] + HINT_FIRST * bool(t.hint) + rng.random() * 1.5))
    for t in order:
        fresh = lambda v: v is not None and v != t.value and (t.name, canon(v)) not in tried  # noqa: E731
        keeps = [e for e in edits if e.name == t.name and e.status == "keep"]
        direction = _direction(t, keeps)
        chance = JUMP_AFTER_KEEP if keeps else HINT_JUMP if direction is not None else JUMP
        if rng.random() < (chance if jump else 0.0):
            toward = direction if direction is not None and rng.random() < DIRECTED else None
            for _ in range(6):
                value = _draw(t, rng, toward)
                if fresh(value):
                    return t, value
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


def _draw(t: Tunable, rng: random.Random, toward: float | None = None) -> float:
    """A value anywhere in the declared range, or (`toward` +1/-1) between the current value and
    the bound on that side: log-uniform on a log scale, else uniform."""
    low = t.low if toward is None or toward < 0 else min(max(t.value, t.low), t.high)
    high = t.high if toward is None or toward > 0 else min(max(t.value, t.low), t.high)
    if t.log and low > 0:
        raw = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        raw = rng.uniform(low, high)
    if t.kind == "int":
        return int(min(max(round(raw), math.ceil(t.low)), math.floor(t.high)))
    return float(min(max(float(f"{raw:.4g}"), t.low), t.high))


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


class MutationProposer(ToolSession):
    """One session: a parent (the best, sometimes another kept trial) and one changed constant."""

    def __init__(self, mcp: Any, specialist: str, *, entrypoint: str, seed: int | None = None,
                 explore: float = 0.2, **kw: Any) -> None:
        super().__init__(mcp, specialist, entrypoint=entrypoint, **kw)
        self.rng, self.explore = random.Random(seed), explore

    def pick_parent(self, rows: list[dict[str, Any]]) -> int:
        """The best, sometimes (with chance `explore`) another kept trial."""
        best = best_row(rows, self.lower_is_better)
        if best is None:
            return 0
        others = [r for r in rows if r.get("status") in ("keep", "baseline") and r.get("score") is not None
                  and r is not best]
        if others and self.rng.random() < self.explore:
            return int(self.rng.choice(others)["exp_id"])
        return int(best["exp_id"])

    async def propose(self, rows: list[dict[str, Any]], parent: int, source: str,
                      tunables: list[Tunable]) -> Change | None:
        choice = propose(tunables, past_edits(rows), parent, self.rng)
        if choice is None:
            return None
        t, value = choice
        ratio = f" (x{value / t.value:.2f})" if t.value else ""
        return Change({t.name: value}, f"set {t.name} {canon(t.value)} -> {canon(value)}{ratio}", "scripted proposer")
