"""Each starting recipe, end to end, without the sandbox: phases as plain subprocesses in a
scratch copy, outputs collected like the evaluator does, the real scorer, then finalize.

These prove the starting recipes pass their own gates with margin on this CPU; run with -s
to see the numbers.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from tasks import get_task
from tasks.base import Measurements
from tests.tasks.helpers import (
    copy_recipe,
    run_interactive,
    run_phase,
    run_scorer,
    tree_bytes,
)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_digits_starting_recipe_passes_the_gate_with_margin(tmp_path):
    task = get_task("digits-speedrun")
    dirs = task.prepare_data(tmp_path / "data")
    smoke, smoke_s, _ = run_phase(copy_recipe(task, tmp_path / "smoke"), dirs.public, smoke=True)
    assert smoke.returncode == 0, smoke.stderr
    walls, cpus = [], []
    for seed in range(task.run_plan.seeds):
        trial = copy_recipe(task, tmp_path / f"trial{seed}")
        proc, wall, cpu = run_phase(trial, dirs.public, seed=seed)
        assert proc.returncode == 0, proc.stderr
        assert cpu < task.limits.phase_budgets_s["train"]
        out = tmp_path / "outputs" / "train" / str(seed)
        out.mkdir(parents=True)
        shutil.copy(trial / "predictions.txt", out / "predictions.txt")
        walls.append(wall)
        cpus.append(cpu)
    scored = run_scorer(task, dirs.hidden, tmp_path / "outputs", tmp_path)
    verdict = task.finalize(Measurements(seeds=task.run_plan.seeds, wall_s={"train": walls},
                                         cpu_s={"train": cpus}, scorer=scored))
    accs = [r["accuracy"] for r in scored["per_seed"].values()]
    print(f"\ndigits-speedrun: smoke {smoke_s:.2f}s, per-seed wall {[round(w, 2) for w in walls]}, "
          f"CPU {[round(c, 2) for c in cpus]}, accuracy {accs}, verdict {verdict.status} "
          f"score {verdict.score:.2f} CPU-s")
    assert verdict.status == "valid"
    assert min(accs) >= task.limits.gates["min_accuracy"] + 0.01


@pytest.mark.timeout(300)
def test_golf_starting_recipe_trains_fits_and_beats_uniform(tmp_path):
    task = get_task("tiny-golf")
    dirs = task.prepare_data(tmp_path / "data")
    smoke, smoke_s, _ = run_phase(copy_recipe(task, tmp_path / "smoke"), dirs.public, smoke=True)
    assert smoke.returncode == 0, smoke.stderr
    assert (tmp_path / "smoke" / "artifact" / "run.py").is_file()
    trial = copy_recipe(task, tmp_path / "trial")
    proc, train_s, train_cpu = run_phase(trial, dirs.public, timeout=task.limits.phase_budgets_s["train"] * 3)
    assert proc.returncode == 0, proc.stderr
    artifact = tmp_path / "eval"
    shutil.copytree(trial / "artifact", artifact)  # the artifact runs from its own copy
    size = tree_bytes(artifact)
    scored, eval_s = run_interactive(task, dirs.hidden, [sys.executable, "run.py"], artifact,
                                     tmp_path, timeout=task.limits.phase_budgets_s["eval"])
    verdict = task.finalize(Measurements(seeds=1, wall_s={"train": [train_s], "eval": [eval_s]},
                                         cpu_s={"train": [train_cpu]}, scorer=scored, artifact_bytes=size))
    projected = task.preflight(task.recipe_dir()).projected_bytes
    print(f"\ntiny-golf: smoke {smoke_s:.1f}s, train {train_s:.1f}s, eval {eval_s:.1f}s, "
          f"artifact {size:,} bytes (projected {projected:,}), val_bpb {scored.get('val_bpb')}, "
          f"tokens {scored.get('tokens')}, verdict {verdict.status}")
    assert verdict.status == "valid", verdict.failure
    assert train_cpu < task.limits.phase_budgets_s["train"]
    assert size < 0.8 * task.limits.artifact_cap_bytes
    assert 0.85 * size < projected <= size
    assert verdict.score < 4.0  # uniform is 8.0; a unigram model of English about 4.5
    assert eval_s < task.limits.phase_budgets_s["eval"]


@pytest.mark.timeout(120)
def test_digits_recipe_is_deterministic_per_seed(tmp_path):
    task = get_task("digits-speedrun")
    dirs = task.prepare_data(tmp_path / "data")
    preds = []
    for i, seed in enumerate([3, 3, 4]):
        trial = copy_recipe(task, tmp_path / f"t{i}")
        proc, _, _ = run_phase(trial, dirs.public, seed=seed, smoke=True)
        assert proc.returncode == 0, proc.stderr
        preds.append((trial / "predictions.txt").read_text())
    assert preds[0] == preds[1]
    assert preds[0] != preds[2]
