"""What the LLM-free proposers (the mutation proposer, Optuna) share: one session over the MCP tools.

A session acts only through the tools, like any specialist: it reads the lineage view and
rows, rebases its workspace to a parent, reads the recipe's tunable block, edits tunable
lines, runs preflight, submits and waits for the row. Subclasses decide two things: the
parent (`pick_parent`) and the change (`propose`). In a roles search a specialist sees only
the constants its role owns (`owner=` in the tunable block); one that owns none says so
(stop reason `owns_no_tunables`) and submits nothing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from client.agent import SessionCancelled, SessionResult, result_text
from lineage.models import BUDGET_EXEMPT, TrialStatus
from tasks.base import Tunable, parse_tunables

UNSCORED = tuple(s.value for s in TrialStatus if not s.is_finished()) + BUDGET_EXEMPT
"""Rows that say nothing about an idea's worth: not decided yet, or failed by the harness."""


@dataclass(frozen=True)
class ToolNames:
    list_trials: str = "blackboard_list_trials"
    get_trial: str = "blackboard_get_trial"
    view: str = "blackboard_get_lineage_view"
    rebase: str = "snapshot_rebase_to"
    read_snapshot: str = "snapshot_read_snapshot"
    list_workspace: str = "submission_list_workspace"
    read: str = "submission_read_workspace_file"
    edit: str = "submission_edit_workspace_file"
    preflight: str = "submission_preflight"
    submit: str = "submission_submit_trial"
    wait: str = "submission_wait_trial"


@dataclass(frozen=True)
class Change:
    """What a proposer submits: new values for some tunables, and how to describe them."""

    values: dict[str, float | int]
    hypothesis: str
    notes: str = ""
    expected_delta: float = 0.0


def canon(x: float) -> str:
    """How a value is written in hypotheses (and compared when read back)."""
    return f"{x:.6g}"


def line_for(t: Tunable, source: str, new: float) -> tuple[str, str]:
    """The tunable's line in `source`, and the same line with its value set to `new`."""
    old_line = source.splitlines()[t.line - 1]
    new_text = str(int(new)) if t.kind == "int" else repr(float(new))
    new_line = re.sub(r"=\s*[-+0-9.eE_]+", f"= {new_text}", old_line, count=1)
    return old_line, new_line


def best_row(rows: list[dict[str, Any]], lower_is_better: bool) -> dict[str, Any] | None:
    """The best scored row among the kept ones (keep or baseline)."""
    kept = [r for r in rows if r.get("status") in ("keep", "baseline") and r.get("score") is not None]
    return (min if lower_is_better else max)(kept, key=lambda r: r["score"]) if kept else None


class ToolSession:
    """One proposer session over a connected fastmcp `Client`; subclasses write
    `pick_parent` and `propose`. `owner`: the role whose constants it may change (roles
    searches), or None to see every constant."""

    def __init__(self, mcp: Any, specialist: str, *, entrypoint: str, lower_is_better: bool = True,
                 owner: str | None = None, names: ToolNames | None = None, wait_s: float = 50.0) -> None:
        self.mcp, self.specialist, self.entrypoint = mcp, specialist, entrypoint
        self.lower_is_better, self.owner = lower_is_better, owner
        self.names, self.wait_s = names or ToolNames(), wait_s
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
        except asyncio.CancelledError:
            raise SessionCancelled(self.result) from None  # its submission (if any) still recorded
        except Exception as e:  # boundary: the session is recorded, not raised
            self.result.error, self.result.stop_reason = f"{type(e).__name__}: {e}", "error"
        return self.result

    # ------------------------------------------------------------ what subclasses decide
    def pick_parent(self, rows: list[dict[str, Any]]) -> int:
        raise NotImplementedError

    async def propose(self, rows: list[dict[str, Any]], parent: int, source: str,
                      tunables: list[Tunable]) -> Change | None:
        raise NotImplementedError

    # ------------------------------------------------------------ the session
    async def _session(self) -> None:
        await self.call(self.names.view, {})
        rows = await self.rows()
        parent = self.pick_parent(rows)
        await self.call(self.names.rebase, {"exp_id": parent})
        source = await self.read(self.entrypoint)
        tunables = self.owned(source)
        if not tunables:
            return
        change = await self.propose(rows, parent, source, tunables)
        if change is None:
            self.result.stop_reason = "nothing_new_to_try"
            return
        by_name = {t.name: t for t in tunables}
        for name, value in change.values.items():
            old_line, new_line = line_for(by_name[name], source, value)
            if new_line != old_line:
                await self.call(self.names.edit, {"path": self.entrypoint, "old_text": old_line, "new_text": new_line})
        check = await self.call(self.names.preflight, {})
        notes = f"{change.notes}; parent exp {parent}; preflight ok={check.get('ok')}".lstrip("; ")
        await self.submit_and_wait(change.hypothesis, notes, change.expected_delta)

    def owned(self, source: str) -> list[Tunable]:
        """The tunables this session may change; none (and the stop reason says why) if its role owns none."""
        every = parse_tunables(source, strict=True)
        mine = [t for t in every if self.owner is None or t.owned_by(self.owner)]
        if not mine:
            self.result.stop_reason = "owns_no_tunables" if every else "nothing_new_to_try"
        return mine

    async def submit_and_wait(self, hypothesis: str, notes: str, expected_delta: float = 0.0) -> dict[str, Any]:
        args = {"hypothesis": hypothesis, "expected_delta": expected_delta, "notes": notes}
        sub = await self.call(self.names.submit, args)
        exp_id = int(sub["exp_id"])
        self.result.exp_ids.append(exp_id)
        while True:  # a candidate keep under confirmation is scored: the next change need not wait
            row = await self.call(self.names.wait, {"exp_id": exp_id, "timeout_s": self.wait_s})
            if row.get("settled"):
                return row

    # ------------------------------------------------------------ reading
    async def rows(self) -> list[dict[str, Any]]:
        """Every trial row this specialist may see, oldest first."""
        rows: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.call(self.names.list_trials, {"offset": offset, "limit": 100, "newest_first": False})
            rows += page.get("trials", [])
            offset = page.get("next_offset")
        return rows

    async def read(self, path: str, exp_id: int | None = None) -> str:
        """A whole file of the workspace (or, with `exp_id`, of that trial's snapshot)."""
        lines: list[str] = []
        offset: int | None = 1
        while offset is not None:
            args: dict[str, Any] = {"path": path, "offset": offset, "limit": 2000}
            if exp_id is None:
                part = await self.call(self.names.read, args)
            else:
                part = await self.call(self.names.read_snapshot, {"exp_id": exp_id, **args})
            lines.append(part["content"])
            offset = part.get("next_offset")
        return "".join(lines)
