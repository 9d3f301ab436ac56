"""parameter-golf: the patch on the pinned bytes, the build, legality, finalize, the scorer's
known answers and cheats caught, and the CPU smoke through the real evaluator and sandbox.

The pinned upstream files are read from ../shared/upstream (tests and development only); tests
that need them skip with the reason where they are absent. The data are synthetic (pg_fixture).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evaluator_service._files import artifact_size
from tasks._prepare import prepare
from tasks.base import Measurements
from tasks.exceptions import DataIntegrityError
from tasks.parameter_golf import layout, legality, patch, upstream
from tasks.parameter_golf.task import NAME, TASK
from tasks.registry import get_task, list_tasks, with_profile
from tests.tasks import pg_fixture
from tests.tasks.pg_fixture import SCORER_VOCAB, UPSTREAM

needs_upstream = pytest.mark.skipif(UPSTREAM is None, reason="the pinned upstream files (../shared/upstream/"
                                    "parameter-golf) are not on this machine")


def _scorer_module(name: str):
    """A module of the standalone scorer, imported from its folder (it is not a project package)."""
    folder = str(TASK.scorer_dir())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    unique = f"parameter_golf_scorer_{name}"
    if unique not in sys.modules:
        spec = importlib.util.spec_from_file_location(unique, TASK.scorer_dir() / f"{name}.py")
        sys.modules[unique] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[unique])
    return sys.modules[unique]


@pytest.fixture
def record() -> tuple[str, str]:
    if UPSTREAM is None:
        pytest.skip("the pinned upstream files are not on this machine")
    source = upstream.unpack((UPSTREAM / upstream.RECORD_DIR / "train_gpt.py").read_bytes()).decode()
    notices = (UPSTREAM / "LICENSE").read_text() + "\n" + (UPSTREAM / "THIRD_PARTY_NOTICES.md").read_text()
    return source, notices


# ---------------------------------------------------------------- upstream and the patch


@needs_upstream
def test_the_record_unpacks_to_the_pinned_source():
    source = upstream.unpack((UPSTREAM / upstream.RECORD_DIR / "train_gpt.py").read_bytes())
    assert len(source) == upstream.UNPACKED_BYTES
    assert hashlib.sha256(source).hexdigest() == upstream.UNPACKED_SHA256


def test_a_file_that_is_not_the_pinned_record_is_refused():
    with pytest.raises(DataIntegrityError, match="is not the pinned 477f4320"):
        upstream.unpack(b'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("abc")))\n')


def test_patch_applies_to_the_pinned_bytes_with_a_stable_sha256(record):
    recipe = patch.patched_recipe(*record)
    assert hashlib.sha256(recipe.encode()).hexdigest() == patch.PATCHED_SHA256
    ast.parse(recipe)  # the record's Python 3.12 f-strings are rewritten for 3.11
    assert recipe.startswith("# MIT License\n#\n# Copyright (c) 2026 OpenAI")
    assert "# Copyright (c) 2024 Keller Jordan" in recipe and "Permission is hereby granted" in recipe


def test_the_gpu_path_keeps_upstreams_lines(record):
    recipe = patch.patched_recipe(*record)
    for line in ("from flash_attn_interface import flash_attn_func as flash_attn_3_func",
                 "compiled_model=torch.compile(base_model,dynamic=False,fullgraph=True)",
                 "@torch.compile\ndef zeropower_via_newtonschulz5", "backend='gloo'if _AR_CPU else'nccl'",
                 "def _ar_sync():\n\tif not _AR_CPU:torch.cuda.synchronize()"):
        assert line in recipe
    assert "fineweb_val" not in recipe and "quantized_model_path='artifact/final_model.int6.ptz'" in recipe
    assert "os.environ.get('QK_GAIN_INIT',5.25)" in recipe and "os.environ.get('TTT_ENABLED','1')" in recipe


def test_an_anchor_that_does_not_fit_names_its_edit():
    edit = patch.Edit("the thing", "abc", "xyz")
    with pytest.raises(patch.PatchError, match="patch edit 'the thing': its anchor occurs 0 times, expected 1"):
        patch.apply_edits("no anchor here", (edit,))
    with pytest.raises(patch.PatchError, match="occurs 2 times"):
        patch.apply_edits("abc abc", (edit,))
    assert patch.apply_edits("1 abc 2", (edit,)) == "1 xyz 2"


def test_the_recipes_packer_matches_the_harnesss_and_round_trips():
    namespace: dict = {}
    block = patch.HARNESS_BLOCK[patch.HARNESS_BLOCK.index("def _ar_pack"):]
    exec("import lzma\n" + block, namespace)  # only _ar_pack: the rest of the block needs torch
    source = "print('héllo')\n" * 50
    packed = namespace["_ar_pack"](source)
    assert packed == upstream.pack(source)
    out: dict = {"__name__": "x"}
    exec(packed.replace("exec(", "SRC=(", 1), out)
    assert out["SRC"].decode() == source


# ---------------------------------------------------------------- the build


@pytest.mark.slow
@pytest.mark.timeout(120)
@needs_upstream
def test_build_splits_holdout_from_training_and_keeps_validation_hidden(tmp_path):
    task = pg_fixture.prepared_task(tmp_path)
    src = tmp_path / layout.SOURCES / pg_fixture.SPEC.dataset
    public, hidden = tmp_path / "public", tmp_path / "hidden"
    last = np.asarray(layout.shard_tokens(src / "fineweb_train_000001.bin"))
    kept = np.asarray(layout.shard_tokens(public / "datasets" / pg_fixture.SPEC.dataset / "fineweb_train_000001.bin"))
    held = np.asarray(layout.shard_tokens(public / "holdout" / "fineweb_holdout_000000.bin"))
    assert len(held) == pg_fixture.SPEC.holdout_tokens and np.array_equal(np.concatenate([kept, held]), last)
    assert sorted(p.name for p in (public / "datasets" / pg_fixture.SPEC.dataset).iterdir()) == \
        ["fineweb_train_000000.bin", "fineweb_train_000001.bin"]
    val = (hidden / "val" / "fineweb_val_000000.bin").read_bytes()
    assert all(val[1024:1536] not in p.read_bytes() for p in public.rglob("*") if p.is_file())
    assert sorted(p.name for p in hidden.iterdir()) == ["byte_tables.npz", "meta.json", "val"]
    assert (tmp_path / "recipe" / "train_gpt.py").read_text().startswith("# MIT License")
    assert task.prepare_data(tmp_path / "ignored") == layout_dirs(tmp_path)
    assert prepare(task.name, task.preparation(), tmp_path).did == ()


def layout_dirs(root: Path):
    from tasks.base import DataDirs
    return DataDirs(public=root / "public", hidden=root / "hidden")


def test_the_real_plan_asks_for_128_train_shards_and_the_pinned_recipe():
    dests = layout.source_dests(layout.FULL)
    assert sum("fineweb_train_" in d for d in dests) == 128 and sum("fineweb_val_" in d for d in dests) == 1
    plan = TASK.preparation()
    recipe = next(s for s in plan.sources if s.dest.endswith("upstream/train_gpt.py"))
    assert recipe.sha256 == upstream.PACKED_SHA256 and upstream.COMMIT in recipe.url
    assert plan.download_bytes > 25_000_000_000 and "128 train shards" in plan.notes
    hub = [s for s in plan.sources if s.hf_repo]
    assert len(hub) == 128 + 1 + sum(d.endswith((".model", ".vocab")) for d in dests)
    assert all(s.hf_repo == upstream.HF_REPO and (s.sha256 or s.hub_checksum) for s in hub)


def test_a_build_without_the_hub_files_says_what_is_missing(tmp_path):
    with pytest.raises(DataIntegrityError, match="source file.*are not in.*tasks prepare parameter-golf"):
        layout.build_with(tmp_path, layout.FULL)


def test_byte_tables_count_the_utf8_bytes_of_decoded_text(tmp_path):
    import sentencepiece as spm

    docs = pg_fixture.documents(300, seed=3)
    model = pg_fixture.train_tokenizer(docs, tmp_path / "tok", SCORER_VOCAB)
    tables = layout.byte_tables(model)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    for text in ("Bakofi da 1984 zuma.", "Tu caf\u00e9 \u2603 z\u00fcrich 7.", docs[5]):
        ids = np.array([sp.bos_id(), *sp.encode(text)])
        nbytes = tables["base_bytes"][ids[1:]] + (tables["leading_space"][ids[1:]] & ~tables["boundary"][ids[:-1]])
        assert int(nbytes.sum()) == len(sp.decode(sp.encode(text)).encode("utf-8")) == len(text.encode("utf-8"))


# ---------------------------------------------------------------- legality in preflight


@pytest.mark.parametrize(("old", "new", "says"), [
    ("class Hyperparameters:", "class Hparams:", "define `Hyperparameters`"),
    ("def load_eval_model(h,device):", "def load_model(h,device):", "define `load_eval_model`"),
    ("_logger_hparams=None", "_logger_hparams=None;VAL='/hidden/val'", "names '/hidden'"),
    ("hessians={};hooks=[]", "hessians={};hooks=[];v=val_data", "`collect_hessians` (quantization path) uses val_data"),
    ("training_time_ms=.0;", "training_time_ms=.0;h.max_wallclock_seconds=900;", "must be set once"),
    ("serialize(h,base_model,_ar_pack(Path(__file__).read_text(encoding='utf-8')))",
     "serialize(h,base_model,'')", "the artifact's code must be this file, packed"),
])
def test_preflight_disqualifies_what_a_static_check_finds(tmp_path, record, old, new, says):
    recipe = patch.patched_recipe(*record)
    assert legality.problems(recipe) == []
    assert old in recipe
    (tmp_path / "train_gpt.py").write_text(recipe.replace(old, new, 1))
    pre = TASK.preflight(tmp_path)
    assert (pre.ok, pre.status) == (False, "disqualified") and says in pre.message


def test_preflight_reports_a_syntax_error_before_legality(tmp_path):
    (tmp_path / "train_gpt.py").write_text("def broken(:\n")
    pre = TASK.preflight(tmp_path)
    assert (pre.ok, pre.status) == (False, "preflight_crash") and "train_gpt.py:1" in pre.message


# ---------------------------------------------------------------- finalize and the cap


def _scored(**kw) -> dict:
    s = {"valid": True, "val_bpb": 1.0810, "self_reported": True, "eval_s": 520.0,
         "harness": {"val_bpb": 1.0829, "val_loss": 2.797, "bpb_per_loss": 0.3871312},
         "reported": {"label": "quantized_ttt", "val_bpb": 1.0810, "val_loss": 2.7924}}
    s.update(kw)
    return s


def _measure(scorer: dict, artifact: int | None = 15_995_000, train: float = 800.0, smoke: float = 200.0) -> Measurements:
    return Measurements(seeds=1, wall_s={"smoke": [smoke], "train": [train], "score": [700.0]}, scorer=scorer,
                        artifact_bytes=artifact)


def _artifact_of(tmp_path: Path, total: int) -> Path:
    """A train phase's collected outputs (`<seed>/artifact/` with the two files) that the
    evaluator counts as exactly `total` bytes."""
    seed = tmp_path / "train" / "0"
    (seed / "artifact").mkdir(parents=True)
    (seed / "artifact" / "train_gpt.py").write_text("x" * 18_000)
    overhead = artifact_size(seed)[0] + 64 + len("artifact/final_model.int6.ptz")
    (seed / "artifact" / "final_model.int6.ptz").write_bytes(b"\0" * (total - overhead))
    return seed


@pytest.mark.parametrize(("extra", "status"), [(0, "valid"), (1, "size_blocked")])
def test_an_artifact_of_exactly_the_cap_passes_and_one_byte_more_is_blocked(tmp_path, extra, status):
    counted, entries = artifact_size(_artifact_of(tmp_path, TASK.limits.artifact_cap_bytes + extra))
    assert counted == 16_000_000 + extra and entries == 3 <= TASK.limits.artifact_max_entries
    verdict = TASK.finalize(_measure(_scored(), artifact=counted))
    assert verdict.status == status and verdict.metrics["artifact_bytes"] == counted


def test_finalize_scores_the_checked_claim_and_shows_both_numbers():
    v = TASK.finalize(_measure(_scored()))
    assert (v.status, v.score) == ("valid", 1.0810)
    assert v.metrics["harness_val_bpb"] == 1.0829 and v.metrics["self_reported"] is True
    assert v.metrics["train_minus_smoke_s"] == 600.0 and v.metrics["reported_label"] == "quantized_ttt"


@pytest.mark.parametrize(("scorer", "train", "status", "says"), [
    (_scored(eval_overrun=True, reason="ran 640 s"), 800.0, "eval_budget_overrun", "ran 640 s"),
    (_scored(), 861.0, "train_budget_overrun", "661 s longer than the smoke run"),
    ({}, 800.0, "crash", "no result"),
    (_scored(valid=False, invalid_kind="acausal", reason="peeks"), 800.0, "disqualified", "acausal: peeks"),
    (_scored(valid=False, invalid_kind="ratio", reason="bytes"), 800.0, "disqualified", "ratio"),
    (_scored(valid=False, invalid_kind="gain", reason="too good"), 800.0, "disqualified", "gain"),
    (_scored(valid=False, invalid_kind="crash", reason="worker died"), 800.0, "crash", "worker died"),
    (_scored(valid=False, invalid_kind="recipe_eval", reason="rc 1"), 800.0, "crash", "rc 1"),
])
def test_finalize_classifies_in_the_reference_order(scorer, train, status, says):
    v = TASK.finalize(_measure(scorer, train=train))
    assert v.status == status and says in v.failure and v.score is None


def test_a_trial_without_an_artifact_is_a_crash():
    assert TASK.finalize(_measure(_scored(), artifact=None)).status == "crash"


# ---------------------------------------------------------------- the scorer's parts


@pytest.mark.parametrize(("total", "seq", "stride"), [(1000, 128, 64), (1000, 128, 128), (4095, 256, 1), (50, 64, 64)])
def test_windows_score_every_target_once(total, seq, stride):
    ws, first, wlen = _scorer_module("reeval").plan_windows(total, seq, stride)
    scored = np.concatenate([np.arange(w + f, w + n) for w, f, n in zip(ws, first, wlen)])
    assert np.array_equal(scored, np.arange(total)) and (wlen <= seq).all()


def test_a_claim_counts_only_with_the_right_ratio_and_a_plausible_gain():
    score = _scorer_module("score")
    harness = {"val_bpb": 1.0829, "bpb_per_loss": 0.3871312}
    ttt = {"label": "quantized_ttt", "val_loss": 2.79180191, "val_bpb": 1.08079352}
    assert score.check_claim(harness, ttt, 0.03) == (1.08079352, True)
    assert score.check_claim(harness, {**ttt, "label": "quantized_sliding_window"}, 0.03) == (1.0829, False)
    assert score.check_claim(harness, None, 0.03) == (1.0829, False)
    with pytest.raises(score.Invalid, match="byte count is wrong") as e:
        score.check_claim(harness, {**ttt, "val_bpb": 1.05}, 0.03)
    assert e.value.kind == "ratio"
    low = {"label": "quantized_ttt", "val_loss": 2.58, "val_bpb": 2.58 * 0.3871312}
    with pytest.raises(score.Invalid, match="more than the 0.03") as e:
        score.check_claim(harness, low, 0.03)
    assert e.value.kind == "gain"


def _run_scorer(tmp_path: Path, *args: str) -> dict:
    (tmp_path / "score").mkdir()
    (tmp_path / "result").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "score"), "TMPDIR": str(tmp_path),
           "AR_HIDDEN": str(tmp_path / "hidden"), "AR_OUTPUTS": str(tmp_path / "outputs"), "AR_SEEDS": "1",
           "AR_RESULT": str(tmp_path / "result" / "score.json"), "AR_DATA": str(tmp_path / "data"),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(TASK.scorer_dir() / "score.py"), "--recipe-eval=0", "--batch=8",
                           "--stride=16", *args], cwd=tmp_path / "score", env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "result" / "score.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_uniform_model_scores_log2_vocab_times_tokens_per_byte(tmp_path):
    tables = pg_fixture.write_hidden(tmp_path / "hidden")
    pg_fixture.write_artifact(tmp_path / "outputs")
    out = _run_scorer(tmp_path)
    tokens = np.asarray(layout.shard_tokens(tmp_path / "hidden" / "val" / "fineweb_val_000000.bin"))
    targets, nbytes = layout.scored_counts(tokens, tables, seq_len=32)
    assert out["valid"] and out["self_reported"] is False, out
    assert out["harness"]["val_loss"] == pytest.approx(math.log(SCORER_VOCAB), rel=1e-6)
    assert out["val_bpb"] == pytest.approx(math.log2(SCORER_VOCAB) * targets / nbytes, rel=1e-6)
    assert (out["harness"]["tokens"], out["harness"]["bytes"]) == (targets, nbytes)
    assert out["harness"]["probes"] >= 1 and out["harness"]["challenges"] > 0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_model_that_reads_the_next_token_is_caught_by_the_probes(tmp_path):
    pg_fixture.write_hidden(tmp_path / "hidden")
    pg_fixture.write_artifact(tmp_path / "outputs", body="peeking")
    out = _run_scorer(tmp_path)
    assert (out["valid"], out["invalid_kind"]) == (False, "acausal"), out
    assert TASK.finalize(_measure(out)).status == "disqualified"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_model_that_peeks_only_at_windows_it_has_not_seen_is_caught_too(tmp_path):
    pg_fixture.write_hidden(tmp_path / "hidden")
    pg_fixture.write_artifact(tmp_path / "outputs", body="recognising")
    out = _run_scorer(tmp_path)
    assert (out["valid"], out["invalid_kind"]) == (False, "acausal"), out


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_losses_that_are_not_the_models_are_caught_by_the_challenges(tmp_path):
    pg_fixture.write_hidden(tmp_path / "hidden")
    lie = ("import torch\n_ce = torch.nn.functional.cross_entropy\n"
           "torch.nn.functional.cross_entropy = lambda a, b, **k: 0.5 * _ce(a, b, **k)\n")
    pg_fixture.write_artifact(tmp_path / "outputs", prelude=lie)
    out = _run_scorer(tmp_path)
    assert (out["valid"], out["invalid_kind"]) == (False, "inconsistent"), out


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_the_models_code_cannot_read_the_hidden_data(tmp_path):
    if not _scorer_module("landlock").abi():
        pytest.skip("Landlock is not available on this kernel")
    pg_fixture.write_hidden(tmp_path / "hidden")
    shard = tmp_path / "hidden" / "val" / "fineweb_val_000000.bin"
    load = (f"    try:\n        open({str(shard)!r}, 'rb').read(8)\n        print('HIDDEN READ OK')\n"
            "    except OSError as e:\n        print('HIDDEN DENIED', type(e).__name__)\n")
    pg_fixture.write_artifact(tmp_path / "outputs", load=load)
    out = _run_scorer(tmp_path)
    log = (tmp_path / "score" / "seed0" / "worker0.log").read_text()
    assert "HIDDEN DENIED PermissionError" in log and "HIDDEN READ OK" not in log
    assert out["valid"] and out["isolation"].startswith("landlock-abi")


# ---------------------------------------------------------------- registration, profiles, roster


def test_registered_with_eight_gpus_torchrun_phases_and_a_wall_clock():
    task = get_task(NAME)
    assert NAME in list_tasks() and task is TASK
    assert task.resources.gpus == 8 and all(p.torchrun for p in task.run_plan.phases)
    assert task.limits.artifact_cap_bytes == 16_000_000 and task.limits.budget_clock == "wall"
    assert task.limits.phase_budgets_s["train"] == 900.0 and task.limits.phase_budgets_s["eval"] == 600.0
    assert task.run_plan.phases[1].env["MAX_WALLCLOCK_SECONDS"] == "600"
    assert task.run_plan.phases[1].outputs == ("artifact",)


def test_the_proxy_runs_on_one_gpu_without_ttt_or_sliding_and_scores_plainly():
    proxy = with_profile(TASK, "proxy-1gpu")
    env = proxy.trial_env()
    assert proxy.resources.gpus == 1 and env["TTT_ENABLED"] == "0" and env["SLIDING_WINDOW_ENABLED"] == "0"
    argv = proxy.scorer_argv()
    assert "--recipe-eval=0" in argv and f"--stride={1 << 20}" in argv and "--env=TTT_ENABLED=0" in argv
    assert "--recipe-eval=0" not in TASK.scorer_argv() and not any(a.startswith("--stride") for a in TASK.scorer_argv())
    assert "do not compare the two" in proxy.profiles[0].description


def test_smoke_profiles_differ_only_in_the_device_path():
    gpu, cpu = with_profile(TASK, "gpu-smoke"), with_profile(TASK, "cpu-smoke")
    assert (gpu.resources.gpus, cpu.resources.gpus) == (1, 0)
    g, c = gpu.trial_env(), cpu.trial_env()
    assert "AR_DEVICE" not in g and "TORCHDYNAMO_DISABLE" not in g  # CUDA, compiled, as upstream
    assert (c["AR_DEVICE"], c["TORCHDYNAMO_DISABLE"]) == ("cpu", "1")
    assert g["PYTHONPATH"] == c["PYTHONPATH"] == "/data/shim"
    assert "AR_DEVICE" not in TASK.trial_env() and "PYTHONPATH" not in TASK.trial_env()


def test_confined_children_get_no_rule_that_reaches_a_denied_path(tmp_path):
    ll = _scorer_module("landlock")
    for d in ("work/own", "work/hidden/val", "work/other", "top"):
        (tmp_path / d).mkdir(parents=True)
    deny = [str(tmp_path / "work" / "hidden")]
    readable = ll.allowed_roots(deny, top=str(tmp_path))
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in readable) == ["top", "work/other", "work/own"]
    writable = ll.writable_roots([str(tmp_path / "work"), str(tmp_path / "work" / "hidden" / "val")], deny)
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in writable) == ["work/other", "work/own"]


def test_roster_has_the_papers_ten_specialists_and_knowledge_starts_with_init():
    assert [r.name for r in TASK.roster()] == ["arch", "opt", "quant", "reg", "loss", "eval", "curr", "tok", "ttt",
                                                "meta"]
    knowledge = TASK.knowledge()
    assert list(knowledge)[:2] == ["INIT.md", "SOTA.md"]
    for fact in ("16,000,000", "score-first", "0.3871312", "GPTQ", "self-reported", "holdout", "AR_DATA"):
        assert fact in knowledge["INIT.md"]


def test_the_fixture_task_differs_from_the_real_one_only_in_root_spec_and_sources(tmp_path):
    for dest in layout.source_dests(pg_fixture.SPEC):
        (tmp_path / dest).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / dest).write_bytes(b"x")
    task = pg_fixture.fixture_task(tmp_path)
    changed = {f.name for f in dataclasses.fields(task) if getattr(task, f.name) != getattr(TASK, f.name)}
    assert changed == {"root", "spec", "sources"}


# ---------------------------------------------------------------- the real code path on a CPU


@pytest.mark.slow
@pytest.mark.timeout(120)
@needs_upstream
def test_without_the_cpu_profile_the_recipe_needs_cuda(tmp_path):
    task = pg_fixture.prepared_task(tmp_path / "root")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path / "root" / "public" / "shim"),
           "AR_DATA": str(tmp_path / "root" / "public"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(task.recipe_dir() / "train_gpt.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=100, check=False)
    assert proc.returncode == 1 and "CUDA is required (AR_DEVICE=cpu is only for the cpu-smoke profile)" in proc.stderr


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
@needs_upstream
def test_cpu_smoke_runs_every_phase_and_the_scorer_through_the_real_evaluator(tmp_path):
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from evaluator_service.sandbox import Sandbox, SandboxConfig

    task = with_profile(pg_fixture.prepared_task(tmp_path / "root"), "cpu-smoke")
    sandbox = Sandbox(SandboxConfig(workdir=tmp_path / "evaluator", uid_base=62000))
    t0 = time.monotonic()
    try:
        data = prepare_data(task, tmp_path / "data")
        out = evaluate(task, TrialSpec(task=NAME, profile="cpu-smoke", tree=task.recipe_dir(), seeds=1, gpus=0),
                       sandbox=sandbox, data_dirs=data)
    finally:
        sandbox.close()
    print(f"\nparameter-golf cpu-smoke through the sandbox in {time.monotonic() - t0:.0f} s: {out.timings}")
    assert out.status == "valid", (out.failure, out.log_tail)
    m = out.metrics
    assert out.self_reported and m["reported_label"] == "quantized_ttt" and out.score == m["reported_val_bpb"]
    assert abs(m["harness_val_bpb"] - m["reported_val_bpb"]) < 0.03 and 0 < m["val_bpb"] < 20
    assert 0 < out.artifact_bytes < 16_000_000 and {"smoke", "train", "score"} <= set(out.timings)
    assert m["probes"] >= 1 and m["eval_s"] > 0
