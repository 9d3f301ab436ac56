"""tiny-golf's scorer against fake artifacts, as real processes wired by pipes.

The hidden text here is random bytes, so every 8-byte window is unique: a context maps back
to exactly one position, and no model can beat 8 bits per byte without seeing the target.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks import get_task
from tests.tasks import fake_artifacts
from tests.tasks.helpers import run_interactive

TASK = get_task("tiny-golf")
LANES = 16


def _score_module():
    spec = importlib.util.spec_from_file_location("golf_score", TASK.scorer_dir() / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SCORE = _score_module()


@pytest.fixture
def hidden(tmp_path) -> Path:
    d = tmp_path / "hidden"
    d.mkdir()
    rng = np.random.default_rng(7)
    (d / "val.bin").write_bytes(rng.integers(0, 256, LANES * SCORE.LANE, dtype=np.uint8).tobytes())
    return d


def _run(tmp_path: Path, hidden: Path, source: str, timeout: float = 20) -> dict:
    art = tmp_path / "artifact"
    art.mkdir(exist_ok=True)
    (art / "run.py").write_text(source)
    result, _ = run_interactive(TASK, hidden, [sys.executable, "run.py"], art, tmp_path, timeout=timeout)
    return result


def test_uniform_artifact_scores_exactly_eight_bits(tmp_path, hidden):
    r = _run(tmp_path, hidden, fake_artifacts.UNIFORM)
    assert r["valid"] is True
    assert r["val_bpb"] == 8.0
    assert (r["tokens"], r["lanes"], r["batches"], r["ctx"]) == (LANES * 128, LANES, 128, 128)


@pytest.mark.parametrize(("source", "reason"), [
    (fake_artifacts.UNNORMALISED, "batch 0, row 0: probabilities sum to 2"),
    (fake_artifacts.NAN, "batch 0: non-finite probabilities"),
])
def test_invalid_distributions_are_malformed(tmp_path, hidden, source, reason):
    r = _run(tmp_path, hidden, source)
    assert (r["valid"], r["invalid_kind"], r["reason"], r["val_bpb"]) == (False, "malformed", reason, None)


def test_artifact_that_dies_midway_is_eof(tmp_path, hidden):
    r = _run(tmp_path, hidden, fake_artifacts.DIES_MIDWAY)
    assert (r["valid"], r["invalid_kind"]) == (False, "eof")
    assert r["reason"] == f"artifact closed its output after {LANES // 2 * 1024} of {LANES * 1024} bytes"


@pytest.mark.timeout(15)
def test_artifact_that_hangs_is_a_timeout(tmp_path, hidden):
    r = _run(tmp_path, hidden, fake_artifacts.HANGS, timeout=1)
    assert (r["valid"], r["invalid_kind"]) == (False, "timeout")


def test_peeking_artifact_never_sees_a_target_before_answering(tmp_path, hidden):
    """Every context the artifact received, mapped back to its position in the hidden text:
    no context of a batch covers another target of that batch, and no context of a batch
    or of an earlier one ever covers a target of that batch. The cheater gains nothing."""
    r = _run(tmp_path, hidden, fake_artifacts.PEEKER)
    assert r["valid"] is True and r["val_bpb"] == 8.0
    text = (hidden / "val.bin").read_bytes()
    position = {text[t - SCORE.CTX : t]: t for t in range(SCORE.CTX, len(text) + 1)}
    log, batches, pos = (tmp_path / "artifact" / "contexts.log").read_bytes(), [], 0
    while pos < len(log):
        b, length = struct.unpack("<II", log[pos : pos + 8])
        pos += 8
        batches.append([position[log[pos + i * length : pos + (i + 1) * length]] for i in range(b)])
        pos += b * length
    assert len(batches) == 128 and all(len(b) == LANES for b in batches)
    shown: set[int] = set()
    for targets in batches:
        windows = {p for t in targets for p in range(t - SCORE.CTX, t)}
        shown |= windows
        assert not shown & set(targets)
    assert sorted(t for b in batches for t in b) == sorted(
        k * SCORE.LANE + SCORE.CTX + j for k in range(LANES) for j in range(128))


def test_peeker_does_cheat_when_a_context_shows_the_target(tmp_path):
    """The peeker is a real cheater: fed a leaky batch, it predicts the leaked byte."""
    script = tmp_path / "peek.py"
    script.write_text(fake_artifacts.PEEKER)
    seq = os.urandom(40)
    ctxs = seq[0:32] + seq[1:33]  # the second context shows the first one's target, seq[32]
    proc = subprocess.run([sys.executable, str(script)], input=struct.pack("<II", 2, 32) + ctxs,
                          capture_output=True, cwd=tmp_path, timeout=10, check=True)
    first = struct.unpack("<256f", proc.stdout[:1024])
    assert first[seq[32]] == pytest.approx(0.99)


def test_plan_strides_targets_further_apart_than_the_context():
    lanes, batches = SCORE.plan(10**6)
    assert lanes == SCORE.MAX_LANES == 256
    assert len(batches) == SCORE.SCORED == 128
    for targets in batches:
        assert np.diff(np.sort(targets)).min() > SCORE.CTX
    assert sum(len(b) for b in batches) == 32_768
