"""nanochat-d12's scorer: CORE's protocol and known answers, and the protected worker's checks.

The core tests drive `scorer/core.py` with oracle and random answers (no torch). The scorer
tests run `scorer/score.py` as a subprocess on a synthetic bundle with tiny models that the
real worker loads under Landlock: one that repeats the previous token (right on every
synthetic example: CORE 1.0), a uniform one (it picks the first choice: a known CORE near 0),
and cheats (one that reads the token it predicts, one that halves its losses, one that tries
to read the hidden data).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.nanochat_d12.task import TASK
from tests.tasks import nc_fixture
from tests.tasks.nc_fixture import BASELINES


def _scorer_module(name: str):
    """A module of the standalone scorer, imported from its folder (it is not a project package)."""
    folder = str(TASK.scorer_dir())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    unique = f"nanochat_scorer_{name}"
    if unique not in sys.modules:
        spec = importlib.util.spec_from_file_location(unique, TASK.scorer_dir() / f"{name}.py")
        sys.modules[unique] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[unique])
    return sys.modules[unique]


def _encode(texts: list[str]) -> list[list[int]]:
    return [[256, *t.encode()] for t in texts]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    for name, text in nc_fixture.bundle_files(n=400, seed=3).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / "eval_bundle"


def _answers(rows, pick):
    """Losses and greedy tokens that make `pick(rows)` the model's choice (LM: right iff pick is 0)."""
    if rows.kind == "language_modeling":
        (lo, hi), = rows.spans
        want = list(rows.tokens[0][lo + 1:hi + 1])
        return [[0.0] * (hi - lo)], [want if pick(rows) == 0 else [t + 1 for t in want]]
    choice = pick(rows)
    nll = [[0.1 if i == choice else 2.0] * (hi - lo) for i, (lo, hi) in enumerate(rows.spans)]
    return nll, [[0] * (hi - lo) for lo, hi in rows.spans]


def _core_with(bundle: Path, pick) -> dict:
    core = _scorer_module("core")
    tasks = core.load_tasks(bundle)
    acc = {}
    for task in tasks:
        examples = core.task_rows(task, _encode, limit=4096)
        acc[task.label] = sum(core.decide(e, *_answers(e, pick)) for e in examples) / len(examples)
    return core.core(acc, tasks)


def test_a_model_that_always_picks_the_gold_answer_scores_one(bundle):
    out = _core_with(bundle, lambda rows: rows.gold if rows.kind != "language_modeling" else 0)
    assert out["accuracy"] == {"syn_mc": 1.0, "syn_schema": 1.0, "syn_lm": 1.0}
    assert out["centered"] == {"syn_mc": 1.0, "syn_schema": 1.0, "syn_lm": 1.0} and out["core"] == 1.0


def test_a_model_that_picks_at_random_scores_about_zero(bundle):
    rng = np.random.default_rng(0)
    out = _core_with(bundle, lambda rows: int(rng.integers(len(rows.tokens))) if rows.kind != "language_modeling" else 1)
    assert out["accuracy"]["syn_lm"] == 0.0 and abs(out["accuracy"]["syn_mc"] - 0.25) < 0.07
    assert abs(out["core"]) < 0.06, out


def test_the_protocol_shuffles_with_1337_and_draws_fewshot_with_1234_plus_index(bundle):
    core = _scorer_module("core")
    mc = core.load_tasks(bundle)[0]
    data = core.load_examples(mc)
    import random

    rows = [json.loads(line) for line in mc.path.read_text().splitlines()]
    random.Random(1337).shuffle(rows)
    assert data == rows and core.load_examples(mc, 5) == rows[:5]
    shots = core.fewshot_of(data, 7, 2)
    others = [j for j in range(len(data)) if j != 7]
    assert shots == [data[j] for j in random.Random(1234 + 7).sample(others, 2)]


def test_prompts_and_scored_positions_of_each_kind():
    core = _scorer_module("core")
    shot = {"query": "Q0", "choices": ["a", "b"], "gold": 1}
    texts = core.prompts("multiple_choice", {"query": "Q1", "choices": ["x", "yy"], "gold": 0}, [shot], ": ")
    assert texts == ["Q0: b\n\nQ1: x", "Q0: b\n\nQ1: yy"]
    rows = core.to_rows("multiple_choice", {"gold": 0}, texts, _encode, limit=4096)
    assert rows.spans == ((len(texts[0]) - 1, len(texts[0])), (len(texts[0]) - 1, len(texts[1])))
    lm = core.prompts("language_modeling", {"context": " ctx  ", "continuation": "go"}, [], " ")
    assert lm == ["ctx", "ctx go"]
    (lo, hi), = core.to_rows("language_modeling", {}, lm, _encode, limit=4096).spans
    assert (lo, hi) == (3, 6)  # BOS + "ctx" = 4 tokens; positions 3..5 predict " go"
    sch = core.prompts("schema", {"context_options": ["A1", "B2"], "continuation": "end", "gold": 1}, [], " ")
    assert sch == ["A1 end", "B2 end"]
    assert core.to_rows("schema", {"gold": 1}, sch, _encode, limit=4096).spans == ((2, 6), (2, 6))
    assert core.centred(0.625, 25.0) == 0.5


def test_a_long_row_keeps_its_last_tokens_and_its_scored_positions():
    core = _scorer_module("core")
    rows = core.to_rows("language_modeling", {}, ["a" * 20, "a" * 20 + " b"], _encode, limit=10)
    assert len(rows.tokens[0]) == 10 and rows.spans == ((10 - 2 - 1, 10 - 1),)


# ---------------------------------------------------------------- the scorer, end to end


def _run_scorer(tmp_path: Path, *args: str) -> dict:
    (tmp_path / "score").mkdir()
    (tmp_path / "result").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "score"), "TMPDIR": str(tmp_path),
           "AR_HIDDEN": str(tmp_path / "hidden"), "AR_OUTPUTS": str(tmp_path / "outputs"), "AR_SEEDS": "1",
           "AR_RESULT": str(tmp_path / "result" / "score.json"), "AR_DATA": str(tmp_path / "public"),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(TASK.scorer_dir() / "score.py"), "--bpb-tokens=2000",
                           "--batch-tokens=2048", *args], cwd=tmp_path / "score", env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "result" / "score.json").read_text())


def _uniform_core(n: int = 24) -> float:
    rows = nc_fixture.bundle_rows(n)
    acc = {"syn_mc": np.mean([r["gold"] == 0 for r in rows["syn_mc"]]),
           "syn_schema": np.mean([r["gold"] == 0 for r in rows["syn_schema"]]), "syn_lm": 0.0}
    return float(np.mean([(acc[k] - BASELINES[k] / 100) / (1 - BASELINES[k] / 100) for k in acc]))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_model_that_repeats_the_previous_token_gets_every_synthetic_example_right(tmp_path):
    nc_fixture.write_scorer_data(tmp_path)
    nc_fixture.write_model(tmp_path / "outputs", mode="copy_prev")
    out = _run_scorer(tmp_path)
    assert out["valid"], out
    assert out["accuracy"] == {"syn_mc": 1.0, "syn_schema": 1.0, "syn_lm": 1.0} and out["core"] == 1.0
    assert out["probes"] >= 1 and out["challenges"] > 0 and out["tokens_read"] == 5000 and 0 < out["val_bpb"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_uniform_model_picks_the_first_choice_and_scores_bpb_of_log2_vocab_per_byte(tmp_path):
    nc_fixture.write_scorer_data(tmp_path)
    nc_fixture.write_model(tmp_path / "outputs", mode="uniform")
    out = _run_scorer(tmp_path)
    assert out["valid"] and out["core"] == pytest.approx(_uniform_core(), abs=1e-12), out
    # one byte per token: bpb = ln(265) nats per byte / ln 2, over every byte-carrying target
    assert out["val_bpb"] == pytest.approx(np.log2(265), rel=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("mode", "kind"), [("peek", "acausal"), ("lying", "inconsistent")])
def test_a_model_that_reads_its_target_or_lies_about_its_losses_is_caught(tmp_path, mode, kind):
    nc_fixture.write_scorer_data(tmp_path)
    nc_fixture.write_model(tmp_path / "outputs", mode=mode)
    out = _run_scorer(tmp_path)
    assert (out["valid"], out["invalid_kind"]) == (False, kind), out
    assert TASK.finalize(_measured(out)).status == "disqualified"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_the_models_code_cannot_read_the_bundle(tmp_path):
    if not _scorer_module("landlock").abi():
        pytest.skip("Landlock is not available on this kernel")
    nc_fixture.write_scorer_data(tmp_path)
    bundle = tmp_path / "hidden" / "eval_bundle" / "core.yaml"
    load = (f"    try:\n        open({str(bundle)!r}).read()\n        print('HIDDEN READ OK')\n"
            "    except OSError as e:\n        print('HIDDEN DENIED', type(e).__name__)\n")
    nc_fixture.write_model(tmp_path / "outputs", load=load)
    out = _run_scorer(tmp_path)
    log = (tmp_path / "score" / "seed0" / "worker0.log").read_text()
    assert "HIDDEN DENIED PermissionError" in log and "HIDDEN READ OK" not in log
    assert out["valid"] and out["isolation"].startswith("landlock-abi")


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("kw", "kind", "says"), [
    ({"depth": 16}, "depth", "fixes the depth at 12"),
    ({"ledger": []}, "ledger", "logged no reads"),
    ({"ledger": [{"split": "train", "file": "shard_00009.parquet", "rg": 0, "epoch": 1}]}, "ledger",
     "not training data of this task"),
    ({"trained": 60_000}, "ledger", "logged reading only 5,000"),
])
def test_a_wrong_depth_or_ledger_is_disqualified(tmp_path, kw, kind, says):
    nc_fixture.write_scorer_data(tmp_path)
    nc_fixture.write_model(tmp_path / "outputs", **kw)
    out = _run_scorer(tmp_path)
    assert (out["valid"], out["invalid_kind"]) == (False, kind) and says in out["reason"], out
    assert TASK.finalize(_measured(out)).status == "disqualified"


def _measured(scorer: dict):
    from tasks.base import Measurements

    return Measurements(seeds=1, wall_s={"smoke": [60.0], "train": [900.0], "score": [300.0]}, scorer=scorer)


def test_the_landlock_helper_is_parameter_golfs_byte_for_byte():
    ours = (TASK.scorer_dir() / "landlock.py").read_bytes()
    theirs = (Path(__file__).resolve().parents[2] / "tasks" / "parameter_golf" / "scorer" / "landlock.py").read_bytes()
    assert ours == theirs
