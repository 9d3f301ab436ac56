"""`autoresearch compare` on three small real searches, and on the imported published run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from lineage.compare import bootstrap, bootstrap_difference, compare_dirs, versus
from tests.conftest import PUBLISHED
from tests.servers.dashboard_feed import make_search, record

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def three(tmp_path: Path) -> list[Path]:
    """Two repeated searches of one arm (roles) and one of another (generic), trials recorded."""
    a = make_search(tmp_path / "a")
    record(a, "opt", "LR", "0.003", score=1.9)  # keep (beats 2.0 by more than 0.07)
    record(a, "arch", "HIDDEN", "128", score=1.95, parent=1)  # discard
    record(a, "reg", "WEIGHT_DECAY", "0.001", status="crash", parent=1)
    record(a, "opt", "EPOCHS", "20", score=1.6, parent=1)  # keep: the best, 4th trial
    b = make_search(tmp_path / "b")
    record(b, "opt", "LR", "0.004", score=1.7)  # keep: the best at once
    record(b, "loss", "LABEL_SMOOTHING", "0.1", score=2.2, parent=1)
    c = make_search(tmp_path / "c", roster="generic", agents=2)
    record(c, "agent-1", "LR", "0.001", score=2.1)
    for sd in (a, b, c):
        sd.close()
    return [a.path, b.path, c.path]


@pytest.mark.timeout(60)
def test_compare_three_searches_per_search_and_per_group(three: list[Path], tmp_path: Path) -> None:
    result = _run("compare", *three, "--json", "--plot", tmp_path / "cmp.png")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["label"]: r for r in data["searches"]}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["trials"], a["keeps"], a["best"], a["best_exp"], a["trials_to_best"]) == (4, 2, 1.6, 4, 4)
    assert a["improvement"] == pytest.approx(0.4) and a["improvement_pct"] == pytest.approx(20.0)
    assert a["status_mix"] == {"keep": 0.5, "crash": 0.25, "discard": 0.25}
    assert (b["trials_to_best"], b["improvement"]) == (1, pytest.approx(0.3))
    assert (c["keeps"], c["best"], c["improvement"], c["trials_to_best"]) == (0, 2.0, 0.0, 0)
    assert a["curve"] == {"x": [0.0, 1.0, 4.0], "y": [2.0, 1.9, 1.6]}
    groups = {g["name"]: g for g in data["groups"]}
    roles, generic = groups["digits-speedrun · roles"], groups["digits-speedrun · generic"]
    assert roles["members"] == ["a", "b"] and generic["members"] == ["c"]
    best = roles["figures"]["best"]
    assert best["mean"] == pytest.approx(1.65) and best["lo"] == pytest.approx(1.6) and best["hi"] == pytest.approx(1.7)
    assert generic["figures"]["best"] == {"mean": 2.0, "lo": None, "hi": None, "n": 1}  # one search: no interval
    assert roles["curve"]["median"][0] == 2.0 and roles["curve"]["x"][-1] == 4.0
    assert data["units"] == "metric" and (tmp_path / "cmp.png").read_bytes()[:8] == PNG


@pytest.mark.timeout(60)
def test_compare_prints_tables_a_person_reads(three: list[Path]) -> None:
    result = _run("compare", *three)
    assert result.exit_code == 0, result.output
    assert "searches" in result.stdout and "95% bootstrap interval" in result.stdout
    assert "digits-speedrun · generic" in result.stdout and "[1.6, 1.7]" in result.stdout


def test_bootstrap_interval_is_reproducible_and_brackets_the_mean() -> None:
    once, again = bootstrap([1.0, 2.0, 3.0, 4.0]), bootstrap([1.0, 2.0, 3.0, 4.0])
    assert once == again and once["lo"] < once["mean"] == 2.5 < once["hi"]
    assert bootstrap([]) == {"mean": None, "lo": None, "hi": None, "n": 0}


def test_a_difference_of_two_groups_has_an_interval_from_resampling_both() -> None:
    d = bootstrap_difference([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert d["mean"] == pytest.approx(4.0) and d["n"] == (3, 3)
    assert 2.0 <= d["lo"] < 4.0 < d["hi"] <= 6.0  # the extremes: 5 - 3 and 7 - 1
    assert d == bootstrap_difference([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])  # a fixed seed
    overlapping = bootstrap_difference([1.0, 4.0, 7.0], [2.0, 4.0, 6.0])
    assert overlapping["lo"] < 0 < overlapping["hi"]  # no difference to speak of: the interval says so
    assert bootstrap_difference([1.0], [2.0, 3.0]) == {"mean": -1.5, "lo": None, "hi": None, "n": (1, 2)}
    assert bootstrap_difference([], [2.0])["mean"] is None


@pytest.mark.timeout(60)
def test_versus_sets_each_group_against_the_control(three: list[Path]) -> None:
    result = compare_dirs(three)
    rows = versus(result, "digits-speedrun · roles")
    assert [(v["group"], v["control"]) for v in rows] == [("digits-speedrun · generic", "digits-speedrun · roles")]
    best = rows[0]["figures"]["best"]
    assert best["mean"] == pytest.approx(2.0 - 1.65) and best["lo"] is None  # one generic search: no interval
    assert rows[0]["figures"]["improvement_pct"]["mean"] == pytest.approx(0.0 - 17.5)
    assert versus(result, "no such arm") == []


@pytest.mark.timeout(60)
def test_compare_a_search_with_the_imported_published_run(tmp_path: Path, three: list[Path]) -> None:
    if not (PUBLISHED / "results.tsv").is_file():
        pytest.skip(f"the published run is not present at {PUBLISHED}")
    assert _run("import", PUBLISHED, "--state", tmp_path / "published").exit_code == 0
    result = _run("compare", tmp_path / "published", three[0], "--json", "--plot", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    pub = data["searches"][0]
    assert (pub["task"], pub["arm"], pub["trials"], pub["keeps"], pub["best"], pub["best_exp"]) == (
        "cifar-airbench96", "imported", 97, 4, 25.1464, 70)
    assert pub["trials_to_best"] == 70 and pub["improvement"] == pytest.approx(26.356 - 25.1464)
    assert pub["status_mix"]["disqualified"] == pytest.approx(81 / 97)
    assert data["units"] == "percent"  # two tasks: curves in % over each baseline
    assert pub["plot"]["y"][-1] == pytest.approx(100 * (26.356 - 25.1464) / 26.356)
    assert [g["name"] for g in data["groups"]] == ["cifar-airbench96 · imported", "digits-speedrun · roles"]
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG
