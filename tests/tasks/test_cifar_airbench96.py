"""cifar-airbench96: the patch on the pinned upstream bytes, the build from a CIFAR-format
tarball, the task's declarations, finalize, and the recipe's smoke mode on this CPU.

The scorer's known-answer tests are in test_cifar_scorer.py; the run through the real
evaluator and sandbox is the last test here.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tasks import describe_task, get_task, list_tasks
from tasks._prepare import prepare
from tasks.base import Measurements, parse_tunables
from tasks.cifar_airbench96.data import TARBALL, TEST_LABELS, UPSTREAM, read_tarball
from tasks.cifar_airbench96.patch import (
    EDITS, PATCHED_SHA256, Edit, PatchError, apply_edits, patched_recipe,
)
from tasks.cifar_airbench96.task import NAME, TASK, interval95, t95
from tasks.exceptions import BuildError, DataIntegrityError, NotPreparedError
from tests.tasks.cifar_fixture import fixture_task, pinned_upstream, prepared_root, write_tarball
from tests.tasks.helpers import base_env

TUNABLES = ["TRAIN_EPOCHS", "LR", "WEIGHT_DECAY", "LABEL_SMOOTHING", "BATCH_SIZE_MASKED", "CUTOUT",
            "TTA_LEVEL", "BLOCK3_WIDTH"]


@pytest.fixture(scope="module")
def recipe() -> str:
    return patched_recipe(pinned_upstream())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A task root prepared from a small synthetic tarball (13 images a batch, 40 test images)."""
    return prepared_root(tmp_path_factory.mktemp("cifar") / "root", per_batch=13, n_test=40)


# ---------------------------------------------------------------- the patch


def test_patch_applies_to_the_pinned_bytes_with_a_stable_sha256(recipe):
    assert hashlib.sha256(recipe.encode()).hexdigest() == PATCHED_SHA256
    imported = {a.name for n in ast.walk(ast.parse(recipe)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(ast.parse(recipe)) if isinstance(n, ast.ImportFrom) and n.module}
    assert {"torch", "random", "time"} <= imported and not any(m.startswith("torchvision") for m in imported)
    assert "range(200)" not in recipe and "torch.cuda.synchronize()" not in recipe


def test_patched_recipe_keeps_the_mit_notice_in_its_header(recipe):
    header = "\n".join(recipe.splitlines()[:40])
    assert "Copyright (c) 2024 Keller Jordan" in header
    assert "Permission is hereby granted, free of charge" in header
    assert "KellerJordan/cifar10-airbench" in header and "f1c599c4af24aca803e3e65a6a7e52a502e09d0e" in header


def test_tunables_parse_inside_their_ranges_and_feed_hyp(recipe):
    tunables = parse_tunables(recipe)
    assert [t.name for t in tunables] == TUNABLES
    lines = recipe.splitlines()
    start = lines.index("# --- tunables ---") + 1
    for i, t in enumerate(tunables):
        assert t.line == start + 1 + i and t.low <= t.value <= t.high, t.name
        assert f"': {t.name}," in recipe, f"hyp does not read {t.name}"


def test_a_changed_upstream_byte_is_refused():
    upstream = bytearray(pinned_upstream())
    upstream[100] ^= 1
    with pytest.raises(DataIntegrityError, match="not the pinned"):
        patched_recipe(bytes(upstream))


def test_an_anchor_that_does_not_fit_names_its_edit():
    text = pinned_upstream().decode()
    with pytest.raises(PatchError, match="'no torchvision': its anchor occurs 0 times"):
        apply_edits(text.replace("import torchvision\n", ""))
    with pytest.raises(PatchError, match="'twice': its anchor occurs 3 times in the text, expected 2"):
        apply_edits(text, (Edit("twice", "InfiniteCifarLoader('cifar10',", "x", count=2),))
    assert len({e.why for e in EDITS}) == len(EDITS)  # every edit has its own name in errors


def _module_settings(path: Path, **env: str) -> dict:
    """Run the recipe's module level (not its __main__) and read back the settings it chose."""
    code = ("import runpy, json; ns = runpy.run_path('airbench96.py', run_name='recipe'); "
            "print(json.dumps({'device': ns['DEVICE'], 'dtype': str(ns['DTYPE']), 'compile': ns['COMPILE'], "
            "'opt': ns['hyp']['opt']}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=path, env=base_env(**env), capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_only_a_smoke_run_without_cuda_leaves_upstreams_gpu_path(recipe, tmp_path):
    (tmp_path / "airbench96.py").write_text(recipe)
    full = _module_settings(tmp_path, AR_SMOKE="0")
    assert (full["device"], full["dtype"], full["compile"]) == ("cuda", "torch.float16", {"mode": "max-autotune"})
    assert (full["opt"]["train_epochs"], full["opt"]["batch_size"], full["opt"]["batch_size_masked"]) == (45.0, 1024, 512)
    for flag in ({"AR_SMOKE": "1"}, {"AR_SMOKE": "0", "AIRBENCH_SMOKE": "1"}):
        smoke = _module_settings(tmp_path, **flag)
        assert (smoke["device"], smoke["dtype"], smoke["compile"]) == ("cpu", "torch.float32", {"backend": "eager"})
        assert (smoke["opt"]["train_epochs"], smoke["opt"]["batch_size"], smoke["opt"]["batch_size_masked"]) == (1.0, 32, 16)


# ---------------------------------------------------------------- the build


def _member(tar_path: Path, name: str) -> dict:
    with tarfile.open(tar_path, "r:gz") as tar:
        return pickle.load(tar.extractfile(f"cifar-10-batches-py/{name}"), encoding="latin1")  # our own fixture


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_build_puts_test_labels_only_in_hidden(prepared):
    import torch

    task, labels = prepared
    root = task.root_dir()
    assert sorted(p.name for p in (root / "public").iterdir()) == ["test.pt", "train.pt"]
    assert sorted(p.name for p in (root / "hidden").iterdir()) == [TEST_LABELS]
    assert (root / "hidden" / TEST_LABELS).read_text().split() == [str(y) for y in labels]
    test = torch.load(root / "public" / "test.pt")
    assert test["images"].shape == (40, 32, 32, 3) and test["labels"].tolist() == [-1] * 40
    train = torch.load(root / "public" / "train.pt")
    first = _member(root / TARBALL, "data_batch_1")
    assert train["images"].shape == (65, 32, 32, 3) and train["images"].dtype == torch.uint8
    assert np.array_equal(train["images"][:13].numpy(), first["data"].reshape(13, 3, 32, 32).transpose(0, 2, 3, 1))
    assert train["labels"][:13].tolist() == first["labels"] and train["classes"][0] == "airplane"
    assert (task.recipe_dir() / "airbench96.py").read_text() == patched_recipe(pinned_upstream())


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_prepared_task_gives_its_dirs_and_a_second_prepare_does_nothing(prepared, tmp_path):
    task, _ = prepared
    dirs = task.prepare_data(tmp_path / "ignored")
    assert (dirs.public, dirs.hidden) == (task.root_dir() / "public", task.root_dir() / "hidden")
    assert prepare(task.name, task.preparation(), task.root_dir()).did == ()
    assert task.hidden_sources() == [task.root_dir().resolve()]  # the tarball in it holds the test labels
    assert task.preflight(task.recipe_dir()).ok
    assert [t["name"] for t in describe_task(task)["tunables"]] == TUNABLES


def test_an_unprepared_task_says_the_command(tmp_path):
    task = fixture_task(tmp_path / "empty", b"x")
    with pytest.raises(NotPreparedError, match=f"autoresearch tasks prepare {NAME} --root"):
        task.prepare_data(tmp_path)


def test_pickles_with_numpys_old_module_path_load(tmp_path):
    labels = write_tarball(tmp_path / "c.tar.gz", per_batch=3, n_test=5, py2_names=True)
    with tarfile.open(tmp_path / "c.tar.gz") as tar:
        assert b"numpy.core.multiarray\n" in tar.extractfile("cifar-10-batches-py/test_batch").read()
    arrays = read_tarball(tmp_path / "c.tar.gz")
    assert arrays["train_x"].shape == (15, 32, 32, 3) and arrays["test_y"].tolist() == labels
    assert np.array_equal(arrays["test_x"][0, 0, 0], _member(tmp_path / "c.tar.gz", "test_batch")["data"][0, ::1024])


class _Shell:
    def __reduce__(self):
        return (__import__("os").system, ("touch pwned",))


@pytest.mark.parametrize(("tar_args", "message"), [
    ({"extra": {"test_batch": _Shell()}}, "refers to posix.system; only numpy arrays"),
    ({"skip": ("test_batch",)}, "no cifar-10-batches-py/test_batch"),
    ({"extra": {"batches.meta": {"label_names": ["a", "b"]}}}, "not a list of 10 class names"),
])
def test_a_tampered_tarball_fails_the_build_and_runs_nothing(tmp_path, monkeypatch, tar_args, message):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    (root / TARBALL).parent.mkdir(parents=True)
    write_tarball(root / TARBALL, per_batch=4, n_test=4, **tar_args)
    (root / UPSTREAM).parent.mkdir(parents=True)
    (root / UPSTREAM).write_bytes(pinned_upstream())
    task = fixture_task(root, (root / TARBALL).read_bytes())
    with pytest.raises(BuildError, match=message):
        prepare(task.name, task.preparation(), root)
    assert not (tmp_path / "pwned").exists() and not (root / "public").exists()


# ---------------------------------------------------------------- declarations


def test_registered_with_gpus_seeds_and_a_wall_clock():
    task = get_task(NAME)
    assert NAME in list_tasks() and task is TASK
    assert (task.resources.gpus, task.run_plan.seeds, task.calibration_seeds) == (8, 10, 3)
    assert task.metric.clock == "wall" and task.limits.budget_clock == "wall" and task.metric.name == "train_s"
    assert task.limits.gates == {"min_accuracy": 0.96}
    smoke, train = task.run_plan.phases
    assert (smoke.kind, train.kind, train.per_seed, train.outputs) == ("smoke", "main", True, ("predictions.txt",))
    assert train.gpus_per_process == 1  # 10 seeds on 8 GPUs: two waves, each seed timed on its own
    assert set(task.limits.phase_budgets_s) >= {"smoke", "train", "score"}


def test_profiles_change_gpus_seeds_and_smoke():
    one = get_task(NAME, profile="1gpu")
    assert (one.resources.gpus, one.run_plan.seeds, one.profile) == (1, 5, "1gpu")
    smoke = get_task(NAME, profile="smoke")
    assert (smoke.resources.gpus, smoke.run_plan.seeds) == (1, 2)
    assert all(p.env["AIRBENCH_SMOKE"] == "1" for p in smoke.run_plan.phases)
    assert smoke.limits.phase_budgets_s["train"] == 600.0


def test_roster_and_knowledge(recipe):
    roles = TASK.roster()
    assert [r.name for r in roles] == ["arch", "opt", "aug", "loss", "reg"]
    for role in roles:
        assert role.title and len(role.scope) > 150
        assert "Out of scope" in role.scope and "Edit radius" in role.scope, role.name
    knowledge = TASK.knowledge()
    assert list(knowledge) == ["INIT.md", "SOTA.md"]
    for tunable in parse_tunables(recipe, strict=True):
        assert f"`{tunable.name}`" in knowledge["INIT.md"], tunable.name
        assert len(tunable.owners) == 1 and tunable.owners[0] in {r.name for r in roles}, tunable.name
    assert "`train_s`" in knowledge["INIT.md"] and "0.96" in knowledge["INIT.md"]


# ---------------------------------------------------------------- finalize


def _scored(accs: list[float], malformed: str = "") -> dict:
    per = {str(i): {"accuracy": a, "correct": round(a * 10_000), "lines": 10_000, "malformed": malformed}
           for i, a in enumerate(accs)}
    return {"per_seed": per}


def _m(walls: list[float], scorer: dict, seeds: int = 10) -> Measurements:
    return Measurements(seeds=seeds, wall_s={"smoke": [90.0], "train": walls}, scorer=scorer)


def test_t_quantiles_match_the_tables():
    assert (t95(1), t95(9), t95(30)) == (12.706, 2.262, 2.042)
    assert t95(31) == pytest.approx(2.0395, abs=2e-4) and t95(100) == pytest.approx(1.9840, abs=2e-4)
    assert interval95([0.5]) is None
    low, high = interval95([0.959, 0.961])  # mean 0.96, sd 0.001414, se 0.001
    assert (low, high) == (pytest.approx(0.96 - 0.012706), pytest.approx(0.96 + 0.012706))


def test_finalize_scores_the_mean_wall_time_and_shows_the_accuracy_interval():
    accs = [0.9605, 0.9615, 0.9598, 0.9610, 0.9602, 0.9612, 0.9600, 0.9608, 0.9604, 0.9606]
    v = TASK.finalize(_m([30.0 + i for i in range(10)], _scored(accs)))
    assert v.status == "valid" and v.score == 34.5 and v.metrics["clock"] == "wall"
    low, high = v.metrics["accuracy_ci95"]
    assert (low + high) / 2 == pytest.approx(0.9606) and high - low == pytest.approx(2 * 2.262 * (258 / 9) ** 0.5 * 1e-4 / 10**0.5)
    assert v.metrics["gate_within_noise"] is False
    riding = TASK.finalize(_m([30.0] * 10, _scored([0.9590, 0.9612] * 5)))
    assert riding.status == "valid" and riding.metrics["gate_within_noise"] is True


def test_finalize_gate_miss_is_disqualified_with_time_and_interval():
    v = TASK.finalize(_m([25.0] * 10, _scored([0.9594] * 9 + [0.9604])))
    assert v.status == "disqualified" and v.score == 25.0
    assert v.failure.startswith("mean accuracy 0.9595 < gate 0.96 over 10 seeds (95% interval 0.9593-0.9597)")


@pytest.mark.parametrize(("walls", "scorer", "failure"), [
    ([25.0] * 9, _scored([0.97] * 10), "train phase wall time measured for 9 of 10 seeds"),
    ([25.0] * 10, {}, "scorer returned no per-seed accuracy"),
    ([25.0] * 10, _scored([0.97] * 9), "predictions for 9 of 10 seeds"),
    ([25.0] * 10, _scored([0.97] * 10, malformed="9999 lines, expected 10000"),
     "seed 0: predictions.txt 9999 lines, expected 10000"),
])
def test_finalize_incomplete_or_malformed_runs_are_a_crash(walls, scorer, failure):
    v = TASK.finalize(_m(walls, scorer))
    assert (v.status, v.failure, v.score) == ("crash", failure, None)


# ---------------------------------------------------------------- the recipe on this CPU


def _smoke(task, tmp_path: Path, seed: int, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    trial = tmp_path / name
    trial.mkdir()
    (trial / "airbench96.py").write_bytes((task.recipe_dir() / "airbench96.py").read_bytes())
    return subprocess.run([sys.executable, "airbench96.py"], cwd=trial, capture_output=True, text=True, timeout=240,
                          env=base_env(AR_DATA=str(task.root_dir() / "public"), AR_SEED=str(seed), HOME=str(trial),
                                       **{"AR_SMOKE": "1", **env}), check=False)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_smoke_runs_on_the_cpu_deterministically_per_seed(prepared, tmp_path):
    task, _ = prepared
    runs = {name: _smoke(task, tmp_path, seed, name) for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    for name, proc in runs.items():
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "placeholder labels" in proc.stdout
    preds = {name: (tmp_path / name / "predictions.txt").read_text() for name in runs}
    assert len(preds["a"].splitlines()) == 40 and set(preds["a"].split()) <= set("0123456789")
    assert preds["a"] == preds["b"] and preds["a"] != preds["c"]
    full = _smoke(task, tmp_path, 0, "full", AR_SMOKE="0")
    assert full.returncode == 1 and "needs a CUDA GPU" in full.stderr


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(300)
def test_smoke_profile_runs_end_to_end_through_the_real_evaluator(prepared, tmp_path):
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from evaluator_service.sandbox import Sandbox, SandboxConfig
    from tasks.registry import with_profile

    task = with_profile(prepared[0], "smoke")
    sandbox = Sandbox(SandboxConfig(workdir=tmp_path / "evaluator", uid_base=62000))
    try:
        data = prepare_data(task, tmp_path / "data")
        out = evaluate(task, TrialSpec(task=NAME, profile="smoke", tree=task.recipe_dir(), seeds=1, gpus=0),
                       sandbox=sandbox, data_dirs=data)
    finally:
        sandbox.close()
    print(f"\ncifar-airbench96 CPU smoke through the sandbox: {out.timings}")
    assert out.status == "disqualified", (out.failure, out.log_tail)
    assert out.score == out.timings["train"] == out.metrics["train_s"] and "smoke" in out.timings
    assert out.failure.startswith("mean accuracy") and out.metrics["n_seeds"] == 1
    correct = out.metrics["accuracy_per_seed"]["0"] * 40  # scored against the 40 hidden labels
    assert correct == pytest.approx(round(correct))
    assert out.metrics["accuracy_ci95"] is None


def test_fixture_task_differs_from_the_real_one_only_in_root_and_tarball(tmp_path):
    task = fixture_task(tmp_path, b"abc")
    changed = {f.name for f in dataclasses.fields(task) if getattr(task, f.name) != getattr(TASK, f.name)}
    assert changed == {"root", "sources"}
    assert [s.dest for s in task.sources] == [UPSTREAM, TARBALL] and task.sources[0] == TASK.sources[0]
