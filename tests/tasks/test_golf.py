"""tiny-golf: corpus integrity, split, hidden sources, size projection, finalize."""

from __future__ import annotations

import gzip
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks import DataIntegrityError, get_task
from tasks._common import manifest_errors, sha256_bytes, verified_bytes
from tasks.base import Measurements
from tasks.tiny_golf import task as golf

TASK = get_task("tiny-golf")


def test_shipped_corpus_matches_its_recorded_checksum():
    text = golf.corpus_text()
    assert len(text) == 383_160
    assert sha256_bytes(text) == golf.CORPUS_SHA256
    assert text.isascii() and text.startswith(b"\n\n            The Internet Wiretap")


def test_checksum_mismatch_is_detected(tmp_path):
    text = gzip.decompress(golf.CORPUS.read_bytes())
    tampered = tmp_path / "devil.txt.gz"
    tampered.write_bytes(gzip.compress(text.replace(b"DEVIL", b"ANGEL", 1)))
    with pytest.raises(DataIntegrityError, match="sha256"):
        verified_bytes(tampered, golf.CORPUS_SHA256)
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    with pytest.raises(DataIntegrityError, match="gzip"):
        verified_bytes(tmp_path / "broken.gz", golf.CORPUS_SHA256)


def test_split_holds_out_every_fifth_block():
    train, val = golf.split(golf.corpus_text())
    assert (len(train), len(val)) == (305_336, 77_824)
    for i in range(0, len(val) - 256, 4096):
        assert val[i : i + 256] not in train


def test_prepare_data_writes_public_train_and_hidden_val(tmp_path):
    dirs = TASK.prepare_data(tmp_path / "d")
    assert [p.name for p in dirs.public.iterdir()] == ["train.bin"]
    assert [p.name for p in dirs.hidden.iterdir()] == ["val.bin"]
    assert (dirs.public / "train.bin").stat().st_size == 305_336
    stamp = (dirs.hidden / "val.bin").stat().st_mtime_ns
    TASK.prepare_data(tmp_path / "d")
    assert (dirs.hidden / "val.bin").stat().st_mtime_ns == stamp
    assert manifest_errors(tmp_path / "d", golf.DATA_VERSION) == []


def test_concurrent_prepare_data_builds_once_and_stays_intact(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: TASK.prepare_data(tmp_path / "d"), range(4)))
    assert len(set(results)) == 1
    assert manifest_errors(tmp_path / "d", golf.DATA_VERSION) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.lock", "d"]


def test_hidden_sources_mask_the_shipped_corpus():
    assert golf.CORPUS.parent.resolve() in TASK.hidden_sources()


# ---------------------------------------------------------------- size projection


def _tree_with(tmp_path: Path, **tunables: int) -> Path:
    tree = Path(shutil.copytree(TASK.recipe_dir(), tmp_path / "tree"))
    src = (tree / "train.py").read_text()
    for name, value in tunables.items():
        old = next(line for line in src.splitlines() if line.startswith(f"{name} = "))
        src = src.replace(old, old.replace(old.split()[2], str(value), 1))
    (tree / "train.py").write_text(src)
    return tree


def test_size_projection_of_the_starting_recipe_is_under_the_cap():
    result = TASK.preflight(TASK.recipe_dir())
    assert result.ok
    assert 240_000 < result.projected_bytes < golf.ARTIFACT_CAP * 0.75


def test_size_projection_blocks_an_oversized_config(tmp_path):
    tree = _tree_with(tmp_path, N_LAYER=6, D_MODEL=256)
    result = TASK.preflight(tree)
    assert not result.ok
    assert result.status == "size_blocked"
    assert result.projected_bytes > golf.ARTIFACT_CAP
    assert "> cap 400,000 bytes" in result.message


def test_fewer_quant_bits_let_a_bigger_model_fit(tmp_path):
    assert TASK.preflight(_tree_with(tmp_path / "8", N_LAYER=3, D_MODEL=128)).status == "size_blocked"
    result = TASK.preflight(_tree_with(tmp_path / "4", N_LAYER=3, D_MODEL=128, QUANT_BITS=4))
    assert result.ok and result.projected_bytes < golf.ARTIFACT_CAP


def test_size_projection_opt_out_skips_it(tmp_path):
    tree = _tree_with(tmp_path, N_LAYER=6, D_MODEL=256)
    (tree / "train.py").write_text("# size-projection: off\n" + (tree / "train.py").read_text())
    result = TASK.preflight(tree)
    assert result.ok and result.projected_bytes is None


# ---------------------------------------------------------------- finalize (pure)


def _m(scorer: dict, artifact: int | None = 280_000, train: float = 20.0, ev: float = 8.0,
       wall_x: float = 1.25) -> Measurements:
    """`train`/`ev`: CPU seconds (the budget clock); wall seconds are `wall_x` times them."""
    return Measurements(seeds=1, wall_s={"smoke": [5.0], "train": [train * wall_x], "eval": [ev * wall_x]},
                        cpu_s={"smoke": [4.0], "train": [train], "eval": [ev]},
                        scorer=scorer, artifact_bytes=artifact)


GOOD = {"valid": True, "val_bpb": 2.7, "tokens": 32768}


def test_finalize_valid_scores_bpb_with_metrics():
    v = TASK.finalize(_m(GOOD))
    assert (v.status, v.score) == ("valid", 2.7)
    assert v.metrics == {"val_bpb": 2.7, "tokens": 32768, "artifact_bytes": 280_000,
                         "artifact_cap_bytes": 400_000, "train_s": 20.0, "eval_s": 8.0,
                         "budget_clock": "cpu", "train_wall_s": 25.0, "eval_wall_s": 10.0}


def test_finalize_budgets_are_cpu_seconds_so_a_busy_machine_is_no_overrun():
    """Beside other work a phase's wall time stretches past the budget while its CPU time does
    not: that run is valid (the evaluator enforced the CPU budget while it ran)."""
    v = TASK.finalize(_m(GOOD, train=55.0, ev=40.0, wall_x=2.6))
    assert (v.status, v.score) == ("valid", 2.7), v.failure
    assert (v.metrics["train_s"], v.metrics["train_wall_s"]) == (55.0, 143.0)


@pytest.mark.parametrize(("m", "status", "failure"), [
    (_m(GOOD, ev=61.0), "eval_budget_overrun", "eval took 61.0 CPU-s > budget 60 CPU-s"),
    (_m(GOOD, train=75.5), "train_budget_overrun", "train took 75.5 CPU-s > budget 60 CPU-s"),
    (_m({}, artifact=None), "crash", "no artifact/ was written"),
    (_m({}, artifact=400_001), "size_blocked", "artifact 400,001 bytes > cap 400,000 bytes"),
    (_m({}), "crash", "the scorer returned no result"),
    (_m({"valid": False, "invalid_kind": "malformed", "reason": "batch 0: negative"}),
     "disqualified", "artifact answers malformed: batch 0: negative"),
    (_m({"valid": False, "invalid_kind": "eof", "reason": "closed"}), "crash",
     "artifact answers eof: closed"),
])
def test_finalize_failure_statuses(m, status, failure):
    v = TASK.finalize(m)
    assert (v.status, v.failure, v.score) == (status, failure, None)
