"""cifar-airbench96's scorer as a subprocess: known answers (a perfect, a chance and a shifted
predictor over 10,000 labels) and hostile predictions files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tasks.cifar_airbench96.task import TASK
from tests.tasks.helpers import run_scorer

N = 10_000


@pytest.fixture
def labels(tmp_path) -> list[int]:
    truth = np.random.default_rng(7).integers(0, 10, N).tolist()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "test_labels.txt").write_text("".join(f"{y}\n" for y in truth))
    return truth


def _lines(values: list[int]) -> bytes:
    return "".join(f"{v}\n" for v in values).encode()


def _score(tmp_path: Path, files: dict[str, bytes | None], seeds: str = "") -> dict:
    out = tmp_path / "outputs"
    for seed, content in files.items():
        d = out / "train" / seed
        d.mkdir(parents=True)
        if content is not None:
            (d / "predictions.txt").write_bytes(content)
    result = tmp_path / "result"
    result.mkdir()
    return run_scorer(TASK, tmp_path / "hidden", out, result, seeds=seeds)


def test_perfect_predictor_scores_one(tmp_path, labels):
    r = _score(tmp_path, {"0": _lines(labels), "1": _lines(labels)}, seeds="2")
    assert r["n_test"] == N and r["mean_accuracy"] == 1.0 and r["std_accuracy"] == 0.0
    assert r["per_seed"]["1"] == {"accuracy": 1.0, "correct": N, "lines": N, "malformed": ""}


def test_chance_and_shifted_predictors_score_what_they_should(tmp_path, labels):
    chance = np.random.default_rng(8).integers(0, 10, N).tolist()  # independent of the labels
    shifted = [(y + 1) % 10 if i < 2_500 else y for i, y in enumerate(labels)]  # 2,500 wrong on purpose
    r = _score(tmp_path, {"0": _lines(chance), "1": _lines(shifted)})
    expected = sum(p == y for p, y in zip(chance, labels)) / N
    assert r["per_seed"]["0"]["accuracy"] == expected and abs(expected - 0.1) < 0.015  # 5 sd of chance
    assert r["per_seed"]["1"]["accuracy"] == 0.75
    assert r["mean_accuracy"] == pytest.approx((expected + 0.75) / 2)
    assert r["malformed_seeds"] == [] and r["missing_seeds"] == []


def test_hostile_files_are_named_and_count_as_wrong(tmp_path, labels):
    garbage = b"x\n7.0\n10\n" + b"".join(f"{y}\n".encode() for y in labels[3:])
    files = {"0": garbage, "1": _lines(labels[:9_999]), "2": b"1\n" * 200_000, "3": os.urandom(20_000), "4": None}
    r = _score(tmp_path, files)
    seeds = r["per_seed"]
    assert seeds["0"]["correct"] == N - 3 and seeds["0"]["malformed"] == "3 lines are not a single digit 0-9"
    assert seeds["1"]["malformed"] == "9999 lines, expected 10000"
    assert seeds["2"]["malformed"] == "larger than 262144 bytes"
    assert seeds["3"]["malformed"]
    assert seeds["4"] == {"accuracy": 0.0, "correct": 0, "lines": 0, "malformed": "missing"}
    assert r["missing_seeds"] == ["4"] and r["malformed_seeds"] == ["0", "1", "2", "3"]


def test_a_symlink_to_the_labels_scores_zero(tmp_path, labels):
    out = tmp_path / "outputs" / "train" / "0"
    out.mkdir(parents=True)
    (out / "predictions.txt").symlink_to(tmp_path / "hidden" / "test_labels.txt")
    result = tmp_path / "result"
    result.mkdir()
    r = run_scorer(TASK, tmp_path / "hidden", tmp_path / "outputs", result)
    assert r["per_seed"]["0"] == {"accuracy": 0.0, "correct": 0, "lines": 0, "malformed": "not a regular file"}


def test_expected_seeds_that_wrote_nothing_are_missing(tmp_path, labels):
    r = _score(tmp_path, {"0": _lines(labels)}, seeds="3")
    assert r["seeds"] == ["0", "1", "2"] and r["missing_seeds"] == ["1", "2"]
