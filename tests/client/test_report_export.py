"""`report`'s interval of the best's improvement, and `export --mlflow` into MLflow's local file store."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from lineage.models import Outcome
from tests.conftest import PUBLISHED
from tests.servers.dashboard_feed import RUNS, make_search, record

runner = CliRunner()


def _run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def search(tmp_path: Path) -> Path:
    sd = make_search(tmp_path / "state")
    record(sd, "opt", "LR", "0.003", score=1.9)
    record(sd, "arch", "HIDDEN", "128", score=1.8, parent=1)  # the best; seeds 1.782, 1.8, 1.818
    record(sd, "reg", "WEIGHT_DECAY", "0.001", status="crash", parent=2)
    record(sd, "loss", "LABEL_SMOOTHING", "0.1", parent=2, finish=False)
    sd.close()
    return sd.path


def test_report_gives_the_improvement_with_a_bootstrap_interval(search: Path) -> None:
    result = _run("report", "--state", search, "--json")
    imp = json.loads(result.stdout)["improvement"]
    assert imp["improvement"] == pytest.approx(0.2) and imp["improvement_pct"] == pytest.approx(10.0)
    assert imp["method"].startswith("bootstrap") and (imp["n_baseline"], imp["n_best"]) == (len(RUNS), 3)
    assert 0.15 < imp["lo"] < 0.2 < imp["hi"] < 0.25  # calibration runs spread ~0.035, seeds ~0.015
    assert imp["lo_pct"] == pytest.approx(100 * imp["lo"] / 2.0)
    text = _run("report", "--state", search).stdout
    assert "Improvement over the baseline: +0.2 (+10%), 95% interval +0.1" in text and "5 calibration runs" in text


def test_report_without_the_bests_seeds_takes_its_noise_from_calibration(tmp_path: Path) -> None:
    sd = make_search(tmp_path / "s")
    t = sd.store.create_trial(sd.search_id, specialist="opt", hypothesis="one seed only")
    sd.store.claim_trial(sd.search_id, "w", exp_id=t.exp_id)
    sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status="valid", score=1.8, metrics={"train_s": 1.8}))
    sd.close()
    imp = json.loads(_run("report", "--state", sd.path, "--json").stdout)["improvement"]
    spread = statistics.stdev(RUNS)
    half = 1.959964 * (spread**2 / len(RUNS) + spread**2) ** 0.5
    assert imp["method"].startswith("normal") and imp["n_best"] == 1
    assert (imp["lo"], imp["hi"]) == (pytest.approx(0.2 - half, rel=1e-4), pytest.approx(0.2 + half, rel=1e-4))


def test_report_on_an_imported_run_says_why_there_is_no_interval(tmp_path: Path) -> None:
    if not (PUBLISHED / "results.tsv").is_file():
        pytest.skip(f"the published run is not present at {PUBLISHED}")
    assert _run("import", PUBLISHED, "--state", tmp_path / "pub").exit_code == 0
    imp = json.loads(_run("report", "--state", tmp_path / "pub", "--json").stdout)["improvement"]
    assert imp["improvement"] == pytest.approx(1.2096) and imp["lo"] is None
    assert "fewer than 2 calibration runs" in imp["why"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_export_mlflow_writes_a_run_per_finished_trial_to_the_file_store(search: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    first = _run("export", "--state", search, "--mlflow", uri)
    again = _run("export", "--state", search, "--mlflow", uri)
    assert first.exit_code == 0, first.output
    assert "Exported 4 trials" in first.stdout and "1 unfinished left out" in first.stdout  # baseline + 3
    assert "Exported 0 trials" in again.stdout and "4 already there" in again.stdout
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("autoresearch/state")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == ["exp 000", "exp 001", "exp 002", "exp 003"]
    best = runs["exp 002"]
    assert best.data.tags["status"] == "keep" and best.data.tags["specialist"] == "arch"
    assert best.data.params["HIDDEN"] == "128" and best.data.params["LR"] == "0.003"  # tunables of its snapshot
    assert best.data.metrics["score"] == 1.8 and best.data.metrics["time.train_cpu"] == 2.9
    assert best.info.status == "FINISHED" and runs["exp 003"].info.status == "FAILED"
    assert "shapes do not match" in runs["exp 003"].data.tags["failure"]
    assert exp.tags["task"] == "digits-speedrun"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_export_says_what_to_do_when_mlflow_refuses_or_nothing_is_asked(search: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    refused = _run("export", "--state", search, "--mlflow", (tmp_path / "mlruns").as_uri())
    nothing = _run("export", "--state", search)
    assert refused.exit_code == 2 and "MLflow refused" in refused.output and "MLFLOW_ALLOW_FILE_STORE" in refused.output
    assert nothing.exit_code == 2 and "--out DIR" in nothing.output and "--mlflow URI" in nothing.output
