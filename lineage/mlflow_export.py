"""Export a search's trials to MLflow as runs (`autoresearch export --mlflow URI`).

One MLflow experiment per search (default name `autoresearch/<search id>`), one run per
finished trial, named `exp NNN`: metrics are the score, the deltas, the margin, every numeric
metric the evaluator recorded (nested ones as `key.sub`) and the timings (`time.<phase>`);
params are what `params(trial)` gives (the CLI passes the tunables read from the trial's
snapshot); tags hold the status, the specialist, the parent, the hypothesis and the failure. A
run's MLflow status is FINISHED for baseline/keep/discard, KILLED for cancelled, FAILED
otherwise. Exporting again adds only the trials not exported yet (found by their
`autoresearch.exp_id` tag), so it can follow a running search.

MLflow is an optional extra (`pip install 'autoresearch[mlflow]'`, the `mlflow-skinny` client):
it is imported only here. Its local file store (`file:` URIs) needs MLFLOW_ALLOW_FILE_STORE=true
since MLflow 3; a `sqlite:///path.db` URI needs the full `mlflow` package.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lineage.models import Trial, TrialStatus
from lineage.state import StateDir

PAGE = 500
TEXT = 5000
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class MlflowExportError(RuntimeError):
    """MLflow is missing, or refused the URI (its message says why)."""


@dataclass
class MlflowReport:
    uri: str
    experiment: str
    experiment_id: str
    exported: int = 0
    skipped_existing: int = 0
    skipped_unfinished: int = 0
    params: set[str] = field(default_factory=set)


def _key(name: str) -> str:
    return _KEY.sub("_", name)[:250] or "_"


def trial_metrics(t: Trial) -> dict[str, float]:
    """Every finite number of the row: score, deltas, margin, metrics (one level deep), timings."""
    out: dict[str, Any] = {"score": t.score, "delta": t.delta, "expected_delta": t.expected_delta,
                           "margin": t.margin, "artifact_bytes": t.artifact_bytes}
    for k, v in t.metrics.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    out.update({f"time.{k}": v for k, v in t.timings.items()})
    return {_key(k): float(v) for k, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _tags(t: Trial, search_id: str) -> dict[str, str]:
    tags = {"autoresearch.exp_id": str(t.exp_id), "autoresearch.search": search_id, "status": t.status.value,
            "specialist": t.specialist, "parent_exp": "" if t.parent_exp is None else str(t.parent_exp),
            "hypothesis": t.hypothesis[:TEXT], "decision": t.decision, "failure": t.failure[:TEXT],
            "mlflow.note.content": t.hypothesis[:TEXT]}
    return {k: v for k, v in tags.items() if v}


def _run_status(status: TrialStatus) -> str:
    if status.is_valid():
        return "FINISHED"
    return "KILLED" if status == TrialStatus.CANCELLED else "FAILED"


def _ms(t: Any) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def _mlflow() -> Any:
    try:
        import mlflow.entities
        import mlflow.exceptions
        import mlflow.tracking
    except ImportError:
        raise MlflowExportError("MLflow is not installed: pip install 'autoresearch[mlflow]' "
                                "(or mlflow-skinny) and run the export again") from None
    return mlflow


def _experiment(client: Any, name: str, state: StateDir) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    c = state.search.config
    return str(client.create_experiment(name, tags={"task": c.task_label, "arm": c.arm, "metric": c.score_field,
                                                    "lower_is_better": str(c.lower_is_better)}))


def _exported(client: Any, experiment_id: str) -> set[str]:
    seen: set[str] = set()
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        seen.update(r.data.tags.get("autoresearch.exp_id", "") for r in page)
        token = page.token
        if not token:
            return seen


def export_mlflow(state: StateDir, uri: str, *, experiment: str | None = None,
                  params: Callable[[Trial], dict[str, str]] | None = None) -> MlflowReport:
    """Export `state`'s finished trials as MLflow runs (see the module docstring).

    Raises:
        MlflowExportError: MLflow is not installed, or it refused the URI or a write.
    """
    mlflow = _mlflow()
    e = mlflow.entities
    name = experiment or f"autoresearch/{state.search_id}"
    try:
        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        report = MlflowReport(uri, name, _experiment(client, name, state))
        done = _exported(client, report.experiment_id)
        offset = 0
        while page := state.store.list_trials(state.search_id, offset=offset, limit=PAGE):
            offset += len(page)
            for t in page:
                if not t.status.is_finished():
                    report.skipped_unfinished += 1
                elif str(t.exp_id) in done:
                    report.skipped_existing += 1
                else:
                    _log(client, report, t, state.search_id, params, e.Metric, e.Param, e.RunTag)
    except mlflow.exceptions.MlflowException as exc:
        raise MlflowExportError(f"MLflow refused the export to {uri}: {exc.message}") from None
    return report


def _log(client: Any, report: MlflowReport, t: Trial, search_id: str, params: Any,
         Metric: Any, Param: Any, RunTag: Any) -> None:
    start = _ms(t.started_at or t.created_at) or 0
    run = client.create_run(report.experiment_id, start_time=start, tags=_tags(t, search_id),
                            run_name=f"exp {t.exp_id:03d}")
    given = params(t) if params else {}
    report.params.update(given)
    stamp = _ms(t.finished_at) or start
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, stamp, 0) for k, v in trial_metrics(t).items()],
                     params=[Param(_key(k), str(v)[:6000]) for k, v in given.items()], tags=[RunTag("exp_id", str(t.exp_id))])
    client.set_terminated(run.info.run_id, status=_run_status(t.status), end_time=_ms(t.finished_at))
    report.exported += 1
