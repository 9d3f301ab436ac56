"""nanochat-d12: the patch on the pinned tree, the plan, preparing over a loopback server, the
budget and the verdicts, registration, profiles and roster.

The pinned nanochat tree is read from ../shared/upstream (tests and development only); tests
that need it skip with the reason where it is absent. The data are synthetic (nc_fixture).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks._prepare import prepare
from tasks.base import Measurements
from tasks.nanochat_d12 import budget, fa3, layout, patch, upstream
from tasks.nanochat_d12.task import NAME, TASK, pinned_sources
from tasks.registry import calibration_env, describe_task, get_task, list_tasks, with_env, with_profile
from tests.tasks import nc_fixture
from tests.tasks.loopback import COMMIT, Loopback
from tests.tasks.nc_fixture import SPEC, UPSTREAM

needs_upstream = pytest.mark.skipif(UPSTREAM is None, reason="the pinned nanochat tree (../shared/upstream/"
                                    "nanochat) is not on this machine")


@pytest.fixture
def tree() -> dict[str, bytes]:
    if UPSTREAM is None:
        pytest.skip("the pinned nanochat tree is not on this machine")
    return {path: (UPSTREAM / path).read_bytes() for path in upstream.TREE_SHA256}


# ---------------------------------------------------------------- the pinned tree and the patch


def test_the_pinned_tree_matches_every_recorded_sha256(tree):
    assert {p: hashlib.sha256(b).hexdigest() for p, b in tree.items()} == upstream.TREE_SHA256
    assert len(tree) == 48 and sum(map(len, tree.values())) == 1_178_523


def test_patch_applies_to_the_pinned_bytes_with_a_stable_digest(tree):
    out = patch.patched_tree(tree)
    assert patch.tree_digest(out) == patch.PATCHED_DIGEST
    changed = sorted(p for p in out if out[p] != tree[p])
    assert changed == sorted(patch.EDITS)
    for path in changed:
        text = out[path].decode()
        compile(text, path, "exec")
        assert "MIT License, Copyright (c) 2025 Andrej Karpathy" in text.splitlines()[2]


def test_the_patch_keeps_upstreams_lines_outside_the_harness(tree):
    train = patch.patched_tree(tree)["scripts/base_train.py"].decode()
    for line in ("model = torch.compile(model, dynamic=False)", "from nanochat.flash_attention import USE_FA3",
                 'print0("✓ Using Flash Attention 3 (Hopper GPU detected), efficient, new and awesome.")',
                 'parser.add_argument("--target-param-data-ratio", type=float, default=12,'):
        assert line in train
    assert 'parser.add_argument("--depth", type=int, default=12,' in train
    assert 'parser.add_argument("--core-metric-every", type=int, default=-1,' in train
    loader = patch.patched_tree(tree)["nanochat/dataloader.py"].decode()
    assert "_ar_ledger(split, filepath, rg_idx, epoch)" in loader and "parquet_paths[:-1]" not in loader


def test_preflight_compiles_the_trees_python_only_and_needs_the_entry_point(tree, tmp_path):
    for path, data in patch.patched_tree(tree).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    assert TASK.preflight(tmp_path).ok  # LICENSE, uv.lock, README.md are not Python
    (tmp_path / "nanochat" / "optim.py").write_text("def broken(:\n")
    pre = TASK.preflight(tmp_path)
    assert (pre.ok, pre.status) == (False, "preflight_crash") and "nanochat/optim.py:1" in pre.message
    (tmp_path / "nanochat" / "optim.py").write_text("")
    (tmp_path / "nanochat" / "checkpoint_manager.py").unlink()
    assert "must keep nanochat/checkpoint_manager.py" in TASK.preflight(tmp_path).message


def test_an_anchor_that_does_not_fit_names_its_edit_and_file():
    edit = patch.Edit("the thing", "abc", "xyz")
    with pytest.raises(patch.PatchError, match="patch edit 'the thing' of f.py: its anchor occurs 0 times"):
        patch.apply_edits("nothing", (edit,), "f.py")
    with pytest.raises(patch.PatchError, match="has no scripts/base_train.py"):
        patch.patched_tree({"nanochat/gpt.py": b""})


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_validation_file_is_fixed_by_name_not_by_sort_order(tree, tmp_path):
    for path, data in patch.patched_tree(tree).items():
        (tmp_path / "recipe" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "recipe" / path).write_bytes(data)
    shards = tmp_path / "data" / "base_data_climbmix"
    for i in (0, 1, upstream.VAL_SHARD, 99999):  # 99999 sorts last: upstream would take it as val
        nc_fixture.write_parquet(shards / upstream.shard_name(i), ["x"])
    code = ("from nanochat.dataset import split_parquet_files as s; import os, json; "
            "print(json.dumps([[os.path.basename(p) for p in s(k)] for k in ('train', 'val')]))")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "AR_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "recipe", env=env, capture_output=True,
                          text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train, val = json.loads(proc.stdout.strip().splitlines()[-1])
    assert val == ["shard_06542.parquet"] and train == ["shard_00000.parquet", "shard_00001.parquet", "shard_99999.parquet"]


# ---------------------------------------------------------------- the plan and preparing it


def test_the_real_plan_fetches_the_tree_by_commit_48_shards_the_val_shard_and_the_bundle():
    plan = TASK.preparation()
    tree = [s for s in plan.sources if s.url.startswith("https://raw.githubusercontent.com/")]
    assert len(tree) == 48 and all(upstream.COMMIT in s.url and s.sha256 == upstream.TREE_SHA256[s.url.split(
        upstream.COMMIT + "/")[1]] for s in tree)
    shards = [s for s in plan.sources if s.hf_repo]
    assert [s.hf_file for s in shards][-2:] == ["shard_00048.parquet", "shard_06542.parquet"] and len(shards) == 50
    assert all(s.hf_repo == upstream.HF_DATASET and s.hub_checksum for s in shards)
    bundle = next(s for s in plan.sources if s.dest.endswith("eval_bundle.zip"))
    assert bundle.url == upstream.EVAL_BUNDLE_URL and bundle.first_use
    assert "NON-COMMERCIAL" in plan.notes and "CC-BY-NC-4.0" in plan.notes
    assert describe_task(TASK)["preparation"]["notes"] == plan.notes  # what `tasks show` prints


def _serve(server: Loopback) -> tuple:
    for path in upstream.TREE_SHA256:
        server.add(f"{upstream.REPO}/{upstream.COMMIT}/{path}", (UPSTREAM / path).read_bytes())
    for dest, data in nc_fixture.source_bytes(SPEC).items():
        name = dest.rsplit("/", 1)[1]
        if name.startswith("shard_"):
            server.add_hf(upstream.HF_DATASET, name, data)
        else:
            bundle_url = server.add(name, data)
    return pinned_sources(SPEC, github=f"{server.url}/files", bundle_url=bundle_url)


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_upstream
def test_prepare_over_a_loopback_server_verifies_records_and_builds_everything(tmp_path):
    root = tmp_path / "root"
    with Loopback() as server:
        task = dataclasses.replace(TASK, root=root, spec=SPEC, sources=_serve(server))
        manifest = prepare(NAME, task.preparation(), root, hf_endpoint=server.url)
        again = prepare(NAME, task.preparation(), root, hf_endpoint=server.url)
    assert again.did == () and manifest.complete
    files = manifest.files
    assert files["sources/climbmix/shard_06542.parquet"].origin == f"Hub checksum at {upstream.HF_DATASET}@{COMMIT}"
    assert files["sources/eval_bundle.zip"].origin == "sha256 recorded at the first download"
    assert files["sources/nanochat/scripts/base_train.py"].sha256 == upstream.TREE_SHA256["scripts/base_train.py"]
    for built in ("recipe/scripts/base_train.py", "public/tokenizer/tokenizer.pkl", "hidden/eval_bundle/core.yaml",
                  "hidden/val/shard_06542.parquet", "public/holdout/holdout.parquet", "tokenizer/SHA256SUMS"):
        assert built in files, built
    assert sorted(p.name for p in (root / "public" / "base_data_climbmix").iterdir()) == \
        ["shard_00000.parquet", "shard_00001.parquet"]
    assert not any("06542" in p.name for p in (root / "public").rglob("*"))
    meta = json.loads((root / "hidden" / "meta.json").read_text())
    assert meta["vocab"] == SPEC.vocab and meta["train_tokens"] > 50_000 and meta["fa3"]["staged"] is False
    assert task.prepare_data(tmp_path / "ignored").public == root / "public"


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_upstream
def test_the_tokenizer_is_trained_once_and_kept_across_rebuilds(tmp_path):
    task = nc_fixture.prepared_task(tmp_path)
    sums = (tmp_path / "tokenizer" / "SHA256SUMS").read_text()
    before = (tmp_path / "public" / "tokenizer" / "tokenizer.pkl").read_bytes()
    layout.build_with(tmp_path, SPEC)  # a rebuild (say, a new patch version) keeps the tokenizer
    assert (tmp_path / "tokenizer" / "SHA256SUMS").read_text() == sums
    assert (tmp_path / "public" / "tokenizer" / "tokenizer.pkl").read_bytes() == before
    counts = json.loads((tmp_path / "hidden" / "row_group_tokens.json").read_text())
    assert sorted(counts) == ["shard_00000.parquet", "shard_00001.parquet"] and len(counts["shard_00000.parquet"]) == 40
    assert task.recipe_dir() == tmp_path / "recipe"


@pytest.mark.skipif(importlib.util.find_spec("kernels") is not None, reason="the `kernels` package is installed")
def test_without_the_kernels_package_fa3_is_not_staged_and_says_how_to_get_it(tmp_path):
    status = fa3.stage(tmp_path)
    assert status["staged"] is False and "pip install 'autoresearch[gpu]'" in status["why"]
    assert list(tmp_path.iterdir()) == []  # nothing fetched


@pytest.mark.parametrize("text", [b"", b"kernel bytes\n", bytes(range(256)) * 3])
def test_a_kernel_file_is_checked_against_the_hubs_git_blob_id_or_sha256(tmp_path, text):
    f = tmp_path / "_ops.py"
    f.write_bytes(text)
    blob = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    assert fa3._digest(f, "git-blob:" + "0" * 40) == f"git-blob:{blob}"
    assert fa3._digest(f, "ab" * 32) == hashlib.sha256(text).hexdigest()


def test_a_build_without_its_sources_says_what_to_run(tmp_path):
    from tasks.exceptions import DataIntegrityError

    with pytest.raises(DataIntegrityError, match="source file.*tasks prepare nanochat-d12"):
        layout.build_with(tmp_path, SPEC)


# ---------------------------------------------------------------- budget and verdicts


def _scored(**kw) -> dict:
    s = {"valid": True, "core": 0.1618, "val_bpb": 0.83, "tokens_read": 2_000_000_000, "n_layer": 12,
         "centered": {"hellaswag": 0.2}, "tokens_trained_claim": 1_321_205_760}
    s.update(kw)
    return s


def _measure(scorer: dict, train: float = 700.0) -> Measurements:
    return Measurements(seeds=1, wall_s={"smoke": [90.0], "train": [train], "score": [200.0]}, scorer=scorer)


def test_finalize_scores_the_harnesss_core_and_records_bpb_time_and_budget():
    v = TASK.finalize(_measure(_scored()))
    assert (v.status, v.score) == ("valid", 0.1618)
    m = v.metrics
    assert m["val_bpb"] == 0.83 and m["train_s"] == 700.0 and m["token_budget"] == budget.DEFAULT.tokens
    assert m["train_budget_s"] == 5400.0 and m["budget_source"] == "default"


@pytest.mark.parametrize(("scorer", "train", "status", "says"), [
    (_scored(tokens_read=3_000_000_000), 700.0, "train_budget_overrun", "read 3,000,000,000 tokens"),
    (_scored(), 5500.0, "train_budget_overrun", "over its 5400 s budget"),
    (_scored(valid=False, invalid_kind="ledger", reason="under-reports"), 700.0, "disqualified", "ledger"),
    (_scored(valid=False, invalid_kind="depth", reason="16 layers"), 700.0, "disqualified", "16 layers"),
    (_scored(valid=False, invalid_kind="crash", reason="worker died"), 700.0, "crash", "worker died"),
    ({}, 700.0, "crash", "no result"),
])
def test_finalize_classifies_budget_and_checks(scorer, train, status, says):
    v = TASK.finalize(_measure(scorer, train))
    assert v.status == status and says in v.failure and v.score is None


def test_calibration_sets_the_budget_to_the_baselines_largest_runs_plus_ten_percent():
    b = budget.calibrate([{"train_s": 600.0, "tokens_read": 2_000_000}, {"train_s": 640.0, "tokens_read": 2_000_100},
                          {"train_s": None, "tokens_read": 5}])
    assert b == budget.Budget(train_s=pytest.approx(704.0), tokens=2_200_110, source="calibrated")
    task = TASK.with_budget(b)
    assert task.limits.phase_budgets_s["train"] == pytest.approx(704.0)
    assert task.trial_env()["AR_TOKEN_BUDGET"] == "2200110" and task.trial_env()["AR_TRAIN_BUDGET_S"] == "704"
    assert task.trial_budget().source == "calibrated" and TASK.limits.phase_budgets_s["train"] == 5400.0
    with pytest.raises(ValueError, match="no calibration run measured"):
        budget.calibrate([{"train_s": 1.0}])


def test_the_budget_a_search_would_record_round_trips_through_the_environment():
    env = TASK.calibration_env([{"train_s": 500.0, "tokens_read": 1_000_000}])
    assert env == {"AR_TRAIN_BUDGET_S": "550", "AR_TOKEN_BUDGET": "1100000", "AR_BUDGET_SOURCE": "calibrated"}
    task = TASK.with_env(env)
    assert task.trial_budget() == budget.Budget(train_s=550.0, tokens=1_100_000, source="calibrated")
    assert all(p.env["AR_TOKEN_BUDGET"] == "1100000" for p in task.run_plan.phases)


def test_the_registry_derives_the_calibrated_budget_and_applies_it_to_a_profile():
    # the generic path init and the runtime take (tasks.registry: calibration_env, then get_task + with_env)
    runs = [{"train_s": 480.0, "tokens_read": 900_000, "core": 0.1}, {"train_s": 500.0, "tokens_read": 1_000_000}]
    env = calibration_env(get_task(NAME, "proxy-1gpu"), runs)
    assert env == {"AR_TRAIN_BUDGET_S": "550", "AR_TOKEN_BUDGET": "1100000", "AR_BUDGET_SOURCE": "calibrated"}
    task = with_env(get_task(NAME, "proxy-1gpu"), env)
    assert task.profile == "proxy-1gpu" and task.resources.gpus == 1
    assert task.trial_budget() == budget.Budget(train_s=550.0, tokens=1_100_000, source="calibrated")
    assert task.limits.phase_budgets_s["train"] == 550.0
    assert with_env(TASK, {}) is TASK  # a search that recorded nothing runs the task's defaults


def test_the_default_token_budget_is_d12s_horizon_with_the_cropping_allowance():
    assert budget.D12_TRAINED_TOKENS == 1_321_205_760
    assert budget.DEFAULT.tokens == pytest.approx(1_321_205_760 * 1.6 * 1.1, rel=1e-9)


# ---------------------------------------------------------------- registration, profiles, roster


def test_registered_with_eight_gpus_torchrun_phases_and_the_checkpoint_collected():
    task = get_task(NAME)
    assert NAME in list_tasks() and task is TASK
    assert task.resources.gpus == 8 and all(p.torchrun for p in task.run_plan.phases)
    assert task.run_plan.phases[1].outputs == ("checkpoint", "nanochat")
    assert task.metric.lower_is_better is False and task.metric.name == "core"
    assert task.run_plan.phases[1].argv[3:5] == ("--", "--run=dummy") and "--depth=12" in task.run_plan.phases[1].argv
    assert task.trial_env()["HF_HUB_OFFLINE"] == "1"
    assert set(task.editable) == {p.split("/", 1)[0] for p in upstream.TREE_SHA256}


def test_the_proxy_runs_on_one_gpu_with_a_quarter_of_the_horizon_and_budget():
    proxy = with_profile(TASK, "proxy-1gpu")
    assert proxy.resources.gpus == 1 and "--target-param-data-ratio=3" in proxy.trial_env()["AR_TRAIN_ARGS"]
    assert proxy.trial_budget().tokens == pytest.approx(budget.DEFAULT.tokens / 4, rel=1e-6)
    assert "do not compare the two" in proxy.profiles[0].description


def test_smoke_profiles_change_the_model_size_and_the_scorers_depth():
    cpu, gpu = with_profile(TASK, "cpu-smoke"), with_profile(TASK, "gpu-smoke")
    assert (cpu.resources.gpus, gpu.resources.gpus) == (0, 1)
    assert "--depth=2" in cpu.trial_env()["AR_TRAIN_ARGS"] and cpu.trial_env()["TORCHDYNAMO_DISABLE"] == "1"
    assert "--depth=2" in cpu.scorer_argv() and "--depth=4" in gpu.scorer_argv()
    assert "TORCHDYNAMO_DISABLE" not in gpu.trial_env()


def test_roster_has_the_papers_five_specialists_and_architecture_keeps_depth_12():
    assert [r.name for r in TASK.roster()] == ["arch", "opt", "data", "sched", "sys"]
    assert "depth 12, which is fixed" in TASK.roster()[0].scope
    knowledge = TASK.knowledge()
    assert list(knowledge) == ["INIT.md", "SOTA.md"]
    for fact in ("AR_TOKEN_BUDGET", "AR_TRAIN_BUDGET_S", "shard_06542", "max_per_task=-1", "CORE metric",
                 "build_model", "0.1618"):
        assert fact in knowledge["INIT.md"], fact
