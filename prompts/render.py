"""Render the prompt templates of this folder (Jinja, `StrictUndefined`); no other logic.

    brief.md.j2          the system prompt: global_rules + role or generalist + lineage framing
                         (or the lineage-hidden notice) + the task's knowledge files
    session_start.md.j2  the first user message: the lineage view and the workspace state

Arms are template conditionals on `arm` ("roles" | "generic" | "single") and `lineage`.
`tools` maps each fixed tool name to the name the client sees (e.g. `get_trial` ->
`blackboard_get_trial` in the mounted suite); a template naming a tool absent from it fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

ARMS = ("roles", "generic", "single")
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def _render(name: str, **values: Any) -> str:
    text = _ENV.get_template(name).render(**values)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_brief(
    *, task: Any, role: Any | None, arm: str, lineage: bool, limits: Any, metric: Any,
    knowledge: Mapping[str, str], tools: Mapping[str, str], specialist: str,
    roster: Sequence[str], margin: float | None = None, calibrated: Mapping[str, str] | None = None,
) -> str:
    """The full system prompt of one agent.

    Args:
        task: an object with `name`, `description`, `editable` and `entrypoint`.
        role: the roster role (`name`, `title`, `scope`) for the roles arm, else None.
        arm: "roles", "generic" or "single".
        lineage: False for the lineage-off control (the lineage sections are dropped).
        limits, metric: the task's `Limits` and `Metric`.
        knowledge: knowledge file name -> markdown, in the order to show.
        tools: fixed tool name -> the name the client sees.
        specialist: the agent's name; roster: every specialist of the search, in order.
        margin: the effective noise margin in metric units, if known.
        calibrated: the settings the search recorded from its calibration (a measured compute
            budget), which every trial runs under; `limits` already reflects them.
    """
    if arm not in ARMS:
        raise ValueError(f"arm {arm!r}: expected one of {', '.join(ARMS)}")
    return _render(
        "brief.md.j2", task=task, role=role, arm=arm, lineage=lineage, limits=limits, metric=metric,
        knowledge=dict(knowledge), tools=dict(tools), specialist=specialist, roster=list(roster),
        margin=margin, calibrated=dict(calibrated or {}),
    )


def render_session_start(
    *, view: str, specialist: str, lineage: bool, tools: Mapping[str, str],
    origin: Any | None = None, modified: Sequence[str] = (),
) -> str:
    """The first user message: the lineage view (or best-only view) and the workspace state.

    Args:
        view: the rendered lineage view for this specialist.
        origin: an object with `parent_exp` (the trial the workspace was rebased to), or None.
        modified: workspace files that differ from that trial.
    """
    return _render(
        "session_start.md.j2", view=view, specialist=specialist, lineage=lineage, tools=dict(tools),
        origin=origin, modified=list(modified),
    )
