"""A repeatable study of the arms: the paper's control arms and the LLM-free proposers, each
run R times at the same trial budget on one task, then compared with intervals.

`run_study(StudyConfig(...))` runs every (arm, repeat) as its own `autoresearch run` process
in `<out>/<arm>/<repeat>` (a finished search is skipped, so a study resumes), then compares
the groups. Arms:

| arm | proposer | roster | lineage |
|---|---|---|---|
| roles | scripted | the task's roles | on |
| generic | scripted | as many identical agents | on |
| single | scripted | one generalist | on |
| lineage-off | scripted | roles | off (each sees only the best) |
| random | Optuna random sampler (uniform over the declared ranges) | generic | on |
| tpe | Optuna TPE | generic | on |

Every search calibrates its own baseline and confirms its candidate keeps as the task says,
so the extra evaluator time of confirmation shows per search.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lineage.state import StateDir

ARMS: dict[str, tuple[str, ...]] = {
    "roles": ("--agent", "scripted", "--roster", "roles"),
    "generic": ("--agent", "scripted", "--roster", "generic"),
    "single": ("--agent", "scripted", "--roster", "single"),
    "lineage-off": ("--agent", "scripted", "--roster", "roles", "--no-lineage"),
    "random": ("--agent", "optuna:random", "--roster", "generic"),
    "tpe": ("--agent", "optuna:tpe", "--roster", "generic"),
}


@dataclass
class StudyConfig:
    task: str
    out: Path
    arms: tuple[str, ...] = tuple(ARMS)
    repeats: int = 3
    trials: int = 24
    extra: tuple[str, ...] = ()  # more `run` options for every search (e.g. --slots 2)
    groups: dict[str, list[Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; the arms are {', '.join(ARMS)}")
        if self.repeats < 1 or self.trials < 1:
            raise ValueError("--repeats and --trials must be at least 1")


def done(state: Path, trials: int) -> bool:
    """Whether the search in `state` has finished `trials` trials (nothing left to run)."""
    if not StateDir.exists(state):
        return False
    sd = StateDir.open(state)
    try:
        counts = sd.store.count_trials(sd.search_id)
    finally:
        sd.close()
    finished = sum(n for status, n in counts.items() if status not in ("baseline", "queued", "running", "confirming"))
    return finished >= trials


def run_study(cfg: StudyConfig, on_search: Callable[[str, int, str], None] | None = None) -> dict[str, list[Path]]:
    """Run every (arm, repeat) search not yet done; return the state dirs grouped by arm."""
    for arm in cfg.arms:
        for r in range(cfg.repeats):
            state = (cfg.out / arm / str(r)).resolve()
            cfg.groups.setdefault(arm, []).append(state)
            if done(state, cfg.trials):
                if on_search:
                    on_search(arm, r, "done before")
                continue
            if on_search:
                on_search(arm, r, "running")
            argv = [sys.executable, "-m", "client.cli", "run", "--task", cfg.task, "--state", str(state),
                    "--trials", str(cfg.trials), "--seed", str(r), *ARMS[arm], *cfg.extra]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode not in (0, 3):
                raise RuntimeError(f"{arm} repeat {r} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
            if on_search:
                on_search(arm, r, "finished")
    return cfg.groups


def study_figures(cfg: StudyConfig, control: str = "random") -> dict:
    """The comparison of the study's searches grouped by arm, plus each search's confirmation
    cost (evaluator seconds of re-runs: machine time, not trial budget), and each arm against
    the `control` arm (`result["versus"]`: the difference of mean improvement % and of mean best,
    with bootstrap intervals; empty when the control arm did not run)."""
    from lineage._render_report import confirmation_figures
    from lineage.compare import compare_dirs, versus

    paths = [p for arm in cfg.arms for p in cfg.groups.get(arm, []) if StateDir.exists(p)]
    arms = [arm for arm in cfg.arms for p in cfg.groups.get(arm, []) if StateDir.exists(p)]
    result = compare_dirs(paths, groups=arms)
    for row, path in zip(result["searches"], paths):
        sd = StateDir.open(path)
        try:
            row["confirmation"] = confirmation_figures(sd.store, sd.search_id)
        finally:
            sd.close()
    for group in result["groups"]:
        secs = [r["confirmation"]["seconds"] for r in result["searches"] if r["group"] == group["name"]]
        group["confirmation_seconds"] = sum(secs) / len(secs) if secs else 0.0
    result["versus"] = versus(result, control)
    return result
