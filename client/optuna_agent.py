"""The Optuna proposer: each session asks an Optuna study for a point over the declared tunables.

One session = one trial, through the MCP tools like any specialist (client/proposer.py): it
reads the lineage rows, rebases to the best kept trial, rebuilds the study, asks it for a
point over the tunables it may change (every one; with a roles roster, those its role owns),
edits them into the workspace, runs preflight, submits and waits. The hypothesis names the
point in a fixed form that later sessions read back:

    "optuna tpe point {EPOCHS=12, BATCH_SIZE=256, LR=0.0123}"

The study is rebuilt from the lineage rows at the start of every session rather than kept in
Optuna's RDB storage. The lineage is then the only memory, as for every other agent: a
resume after kill -9, several specialists and several hosts (over MCP, without the lineage
database's URL) see the same study, a lineage-off arm sees only what its rows show, and no
second schema or stale "running" Optuna trial needs reconciling. The cost is one in-memory
study of N trials per session, milliseconds for the trial counts searches run.

Rows become trials: baseline, keep and discard are COMPLETE with the score as the objective
(in the metric's direction); crash, preflight_crash, size_blocked, budget overruns and
disqualified are PRUNED (TPE ranks a pruned trial below every complete one, so a region that
fails is avoided; FAIL would be ignored); infra_error and cancelled are not the idea's fault
and are not told; queued and running are RUNNING, so TPE's constant liar keeps parallel
specialists off the same point. The sampler's seed is derived from the run's seed, the
specialist and the number of rows, so a seed and a lineage fix the point. A point already
tried (from the same parent, when the point covers only some tunables) is never submitted
again: the sampler is asked again, then a random sampler is.
"""

from __future__ import annotations

import importlib.util
import math
import re
import warnings
import zlib
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from client.proposer import Change, ToolSession, best_row, canon
from lineage.models import BUDGET_EXEMPT, TrialStatus
from tasks.base import Tunable, parse_tunables

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = ("tpe", "random", "cmaes", "gp")
_NEEDS = {"cmaes": ("cmaes",), "gp": ("torch", "scipy")}
ATTEMPTS, FALLBACK_AFTER = 24, 4  # asks before giving up; asks of the study's sampler before random ones
_POINT = re.compile(r"^optuna (?P<sampler>[a-z]+) point \{(?P<body>[^{}]*)\}")
_PAIR = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>[-+0-9.eE]+)$")


def check_sampler(name: str) -> None:
    """Raise ValueError (saying what to do) unless `name` is a sampler this install provides."""
    if name not in SAMPLERS:
        raise ValueError(f"optuna sampler {name!r}: use one of {', '.join(SAMPLERS)} (e.g. --agent optuna:tpe)")
    missing = [m for m in _NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"--agent optuna:{name} needs {', '.join(missing)}: pip install {' '.join(missing)}")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    check_sampler(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        return optuna.samplers.RandomSampler(seed=seed)


# ---------------------------------------------------------------- points and hypotheses
def format_point(sampler: str, point: dict[str, float | int]) -> str:
    body = ", ".join(f"{k}={canon(v)}" for k, v in point.items())
    return f"optuna {sampler} point {{{body}}}"


def read_point(hypothesis: str) -> dict[str, float] | None:
    """The point an Optuna hypothesis names; None for any other text (or a cut one)."""
    m = _POINT.match(hypothesis or "")
    if m is None:
        return None
    pairs = [_PAIR.match(p.strip()) for p in m["body"].split(",")]
    if not pairs or any(p is None for p in pairs):
        return None
    try:
        return {p["name"]: float(p["value"]) for p in pairs if p is not None}
    except ValueError:
        return None


def distributions(tunables: list[Tunable]) -> dict[str, BaseDistribution]:
    """The search space: int where declared int, log scale where declared log."""
    out: dict[str, BaseDistribution] = {}
    for t in tunables:
        try:
            if t.kind == "int":
                out[t.name] = IntDistribution(math.ceil(t.low), math.floor(t.high), log=t.log)
            else:
                out[t.name] = FloatDistribution(t.low, t.high, log=t.log)
        except ValueError as e:
            raise ValueError(f"tunable {t.name} [{t.low:g}, {t.high:g}]: {e}; fix its declaration") from e
    return out


def _rounded(d: BaseDistribution, value: float) -> float | int:
    """The value as written into the recipe: ints as ints, floats to 4 significant digits."""
    if isinstance(d, IntDistribution):
        return int(round(value))
    low, high = getattr(d, "low", -math.inf), getattr(d, "high", math.inf)
    return min(max(float(f"{value:.4g}"), low), high)


def point_key(point: dict[str, float | int], parent: int | None = None) -> tuple[Any, ...]:
    return (parent, *sorted((k, canon(v)) for k, v in point.items()))


# ---------------------------------------------------------------- the study
def state_of(status: str) -> TrialState | None:
    """How a row's status is told to the study (None: not told)."""
    try:
        s = TrialStatus(status)
    except ValueError:  # a status this version does not know (an imported row): not told
        return None
    if s.is_valid():
        return TrialState.COMPLETE
    if not s.is_finished():
        return TrialState.RUNNING
    if s.value in BUDGET_EXEMPT:  # infra_error, cancelled: not the idea's fault
        return None
    return TrialState.PRUNED


def told(row: dict[str, Any], dists: dict[str, BaseDistribution],
         baseline: dict[str, float] | None) -> FrozenTrial | None:
    """The row as a finished (or running) Optuna trial, if it names a point in this space."""
    state = state_of(row.get("status", ""))
    point = baseline if row.get("status") == "baseline" else read_point(row.get("hypothesis", ""))
    if state is None or point is None or not dists.keys() <= point.keys():
        return None
    if state == TrialState.COMPLETE and row.get("score") is None:
        return None
    params = {k: _rounded(d, point[k]) for k, d in dists.items()}
    try:
        return create_trial(state=state, params=params, distributions=dists,
                            value=row["score"] if state == TrialState.COMPLETE else None)
    except ValueError:  # a value outside today's range: the declaration changed since
        return None


def build_study(rows: list[dict[str, Any]], dists: dict[str, BaseDistribution], *, lower_is_better: bool,
                sampler: optuna.samplers.BaseSampler, baseline: dict[str, float] | None = None) -> optuna.Study:
    """An in-memory study holding every row that names a point in `dists`, in exp-id order."""
    study = optuna.create_study(direction="minimize" if lower_is_better else "maximize", sampler=sampler)
    study.add_trials([t for r in rows if (t := told(r, dists, baseline)) is not None])
    return study


def ask_point(study: optuna.Study, dists: dict[str, BaseDistribution], tried: set[tuple[Any, ...]],
              seed: int, parent: int | None = None) -> dict[str, float | int] | None:
    """A point not in `tried`: the study's sampler first (a repeat is left running, so constant
    liar steers away from it), then random draws; None when every attempt repeats."""
    for attempt in range(ATTEMPTS):
        if attempt == FALLBACK_AFTER:
            study.sampler = optuna.samplers.RandomSampler(seed=seed)
        trial = study.ask(dists)
        point = {k: _rounded(dists[k], v) for k, v in trial.params.items()}
        if point_key(point, parent) not in tried:
            return point
    return None


def tried_points(rows: list[dict[str, Any]], names: set[str], parent: int | None = None) -> set[tuple[Any, ...]]:
    """Keys of the points rows already submitted over `names` (only those from `parent`, when given)."""
    out = set()
    for r in rows:
        point = read_point(r.get("hypothesis", ""))
        if point and names <= point.keys() and r.get("status") not in BUDGET_EXEMPT \
                and (parent is None or r.get("parent_exp") == parent):
            out.add(point_key({k: point[k] for k in names}, parent))
    return out


def next_point(rows: list[dict[str, Any]], tunables: list[Tunable], *, sampler: str, seed: int, specialist: str,
               lower_is_better: bool, current: dict[str, float | int], parent: int | None = None,
               baseline: dict[str, float] | None = None) -> tuple[dict[str, float | int] | None, str]:
    """The point a session proposes, and what its study was told: a pure function of the run's
    seed, the specialist and the rows it read. `current`: the parent's values (never proposed);
    `parent`: given when the point covers only some of the recipe's tunables, so that only a
    repeat from the same parent counts as one."""
    dists = distributions(tunables)
    mixed = zlib.crc32(f"{seed}:{specialist}:{len(rows)}".encode())
    study = build_study(rows, dists, lower_is_better=lower_is_better, sampler=make_sampler(sampler, mixed),
                        baseline=baseline)
    states = [t.state.name.lower() for t in study.trials]
    told = ", ".join(f"{states.count(s)} {s}" for s in ("complete", "pruned", "running") if s in states)
    tried = tried_points(rows, set(dists), parent) | {point_key(current, parent)}
    return ask_point(study, dists, tried, mixed, parent), told or "nothing yet"


class OptunaAgent(ToolSession):
    """One Optuna session: the study rebuilt from the rows, one point asked, submitted, awaited."""

    def __init__(self, mcp: Any, specialist: str, *, entrypoint: str, sampler: str = "tpe", seed: int = 0,
                 **kw: Any) -> None:
        super().__init__(mcp, specialist, entrypoint=entrypoint, **kw)
        check_sampler(sampler)
        self.sampler, self.seed = sampler, seed

    def pick_parent(self, rows: list[dict[str, Any]]) -> int:
        best = best_row(rows, self.lower_is_better)
        return int(best["exp_id"]) if best else 0

    async def propose(self, rows: list[dict[str, Any]], parent: int, source: str,
                      tunables: list[Tunable]) -> Change | None:
        rows = await self._full_hypotheses(rows)
        partial = len(tunables) < len(parse_tunables(source))
        point, told = next_point(
            rows, tunables, sampler=self.sampler, seed=self.seed, specialist=self.specialist,
            lower_is_better=self.lower_is_better, current={t.name: t.value for t in tunables},
            parent=parent if partial else None, baseline=await self._baseline(rows, parent, source))
        if point is None:
            return None
        return Change(point, format_point(self.sampler, point), f"optuna {self.sampler} proposer; study told {told}")

    async def _baseline(self, rows: list[dict[str, Any]], parent: int, source: str) -> dict[str, float] | None:
        """The starting recipe's values, when its row is visible (it is told as a complete trial)."""
        if not any(r.get("status") == "baseline" for r in rows):
            return None
        text = source if parent == 0 else await self.read(self.entrypoint, exp_id=0)
        return {t.name: float(t.value) for t in parse_tunables(text)}

    async def _full_hypotheses(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Listings cut hypotheses at 200 characters; an Optuna one cut there is read in full."""
        out = []
        for r in rows:
            h = r.get("hypothesis") or ""
            if h.startswith("optuna ") and read_point(h) is None:
                full = await self.call(self.names.get_trial, {"exp_id": int(r["exp_id"])})
                r = {**r, "hypothesis": full.get("hypothesis", h)}
            out.append(r)
        return out
