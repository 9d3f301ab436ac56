"""`autoresearch import | export | report` through typer's CliRunner, on real directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from tests.conftest import PUBLISHED

needs_published = pytest.mark.skipif(
    not (PUBLISHED / "results.tsv").is_file(),
    reason=f"the published CIFAR run is not at {PUBLISHED} (../shared/data is outside the project)")
runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    if not (PUBLISHED / "results.tsv").is_file():
        pytest.skip(f"the published CIFAR run is not at {PUBLISHED}")
    result = _run("import", PUBLISHED, "--state", tmp_path / "state")
    assert result.exit_code == 0, result.output
    return tmp_path / "state"


@needs_published
def test_import_then_report_json_reproduces_the_published_figures(imported: Path) -> None:
    result = _run("report", "--state", imported, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["task"] == "cifar-airbench96"
    assert (data["trials"], data["keeps"]) == (97, 4)
    assert data["status_counts"] == {"disqualified": 81, "preflight_crash": 7, "discard": 5, "keep": 4}
    assert data["best"]["exp_id"] == 70 and isinstance(data["best"]["exp_id"], int)
    assert (data["best"]["score"], data["best"]["specialist"]) == (25.1464, "opt")
    assert (data["score_field"], data["lower_is_better"]) == ("train_s", True)
    assert (data["margin"], data["spread"]) == (0.0, None)


@needs_published
def test_import_prints_what_it_read_and_what_it_could_not(tmp_path: Path) -> None:
    result = _run("import", PUBLISHED, "--state", tmp_path / "s")
    assert result.exit_code == 0
    assert "Imported 98 rows" in result.stdout
    assert "train_s (best.json's numeric field); lower is better" in result.stdout
    assert "exp 070 snapshot_path: 'snapshots/070_opt' is not in the release" in result.stdout
    as_json = _run("import", PUBLISHED, "--state", tmp_path / "t", "--json", "--higher-is-better")
    data = json.loads(as_json.stdout)
    assert (data["rows_imported"], data["lower_is_better"], data["direction_rule"]) == (98, False, "given")


@needs_published
def test_report_text_and_plot(imported: Path, tmp_path: Path) -> None:
    plot = tmp_path / "plots" / "best.png"
    result = _run("report", "--state", imported, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "Best: exp 070 by opt: train_s=25.1464" in result.stdout
    assert "97 trials, 4 keeps" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_published
def test_export_then_import_round_trips_the_figures(imported: Path, tmp_path: Path) -> None:
    result = _run("export", "--state", imported, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Exported 98 rows" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "KNOWLEDGE.md", "LEADERBOARD.md", "best.json", "results.tsv", "tree.tsv"]
    assert _run("import", tmp_path / "out", "--state", tmp_path / "again").exit_code == 0
    first = json.loads(_run("report", "--state", imported, "--json").stdout)
    again = json.loads(_run("report", "--state", tmp_path / "again", "--json").stdout)
    assert {**first, "search_id": ""} == {**again, "search_id": ""}


@pytest.mark.parametrize("args, message", [
    (["import", "{tmp}/missing", "--state", "{tmp}/s"], "is not a directory"),
    (["import", "{tmp}", "--state", "{tmp}/s"], "is not a release layout"),
    (["report", "--state", "{tmp}/missing"], "does not exist"),
    (["export", "--state", "{tmp}", "--out", "{tmp}/o"], "holds no search"),
])
def test_errors_exit_non_zero_with_one_actionable_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = _run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@needs_published
def test_importing_into_an_existing_state_is_refused(imported: Path) -> None:
    result = _run("import", PUBLISHED, "--state", imported)
    assert result.exit_code == 2
    assert "already holds a search" in result.stderr


@needs_published
def test_export_into_a_non_empty_directory_is_refused(imported: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    result = _run("export", "--state", imported, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "not an empty directory" in result.stderr


@needs_published
def test_an_import_that_would_lose_rows_fails_and_lists_them_unless_allowed(tmp_path: Path) -> None:
    release = Path(shutil.copytree(PUBLISHED, tmp_path / "release"))
    lines = (release / "results.tsv").read_text(encoding="utf-8").split("\n")
    lines[51] = "\t".join(lines[51].split("\t")[:4])  # exp 050 cut short after its parent
    (release / "results.tsv").write_text("\n".join(lines), encoding="utf-8")
    refused = _run("import", release, "--state", tmp_path / "s")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    first, *rest = refused.stderr.strip().splitlines()
    assert first.startswith("error: 1 row(s)") and "exp 050" in first and "--allow-loss" in first
    assert rest == ["  lost exp 050 (results.tsv line 52): 4 fields where the header has 18; not enough to read the row"]
    assert not (tmp_path / "s").exists()
    allowed = _run("import", release, "--state", tmp_path / "s", "--allow-loss")
    assert allowed.exit_code == 0, allowed.output
    assert "Imported 97 rows" in allowed.stdout and "Lost 1 row(s)" in allowed.stdout
    assert "lost exp 050 (results.tsv line 52)" in allowed.stdout
    data = json.loads(_run("import", release, "--state", tmp_path / "j", "--allow-loss", "--json").stdout)
    assert [(p["row"], p["field"]) for p in data["lost"]] == [("exp 050", "results.tsv line 52")]
    assert data["rows_imported"] == 97
