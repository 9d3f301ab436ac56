"""tiny-golf: a CPU mirror of Parameter Golf (quality under an artifact cap and time budgets).

The recipe trains a byte-level language model on a small public-domain corpus that ships in
data/ and writes an artifact (weights + the code that runs them). The harness measures the
artifact's bytes (over the cap: `size_blocked`), then the artifact's validation bits per byte
on held-out text, by talking to it from a separate sandbox (scorer/score.py has the protocol).
"""

from __future__ import annotations

import glob
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks._common import RecipeTask, existing, verified_bytes, write_data_dirs
from tasks.base import (
    DataDirs,
    InteractiveEval,
    Limits,
    Measurements,
    Metric,
    Phase,
    Resources,
    RunPlan,
    Verdict,
    parse_tunables,
)

FOLDER = Path(__file__).resolve().parent
CORPUS = FOLDER / "data" / "devil.txt.gz"
CORPUS_SHA256 = "a68e24778d746107257ca94fff92cfc88ef2dc46742361903d70963c81579c35"  # gunzipped
BLOCK_BYTES, VAL_EVERY, VAL_AT = 4096, 5, 2  # held out: every 5th 4 KiB block, index % 5 == 2
DATA_VERSION = f"devil-{CORPUS_SHA256[:12]}-b{BLOCK_BYTES}-val{VAL_AT}of{VAL_EVERY}"
ARTIFACT_CAP = 400_000
SIZE_OPT_OUT = "# size-projection: off"
COMPRESSION_ALLOWANCE = 0.9  # projection assumes lzma saves 10% (it saves about 4% on int8)
# Copies of the corpus outside this folder: the Debian package it came from, if installed.
_DEBIAN_COPIES = ("/usr/share/dictd/devil.dict.dz", "/usr/share/dictd/devil.index")
_DEBIAN_DEBS = "/var/cache/apt/archives/dict-devil_*.deb"


def corpus_text() -> bytes:
    """The shipped corpus, checked against its recorded sha256 (DataIntegrityError if not)."""
    return verified_bytes(CORPUS, CORPUS_SHA256)


def split(text: bytes) -> tuple[bytes, bytes]:
    """(train, val): 4 KiB blocks, every 5th held out; both keep the corpus order."""
    blocks = [text[i : i + BLOCK_BYTES] for i in range(0, len(text), BLOCK_BYTES)]
    val = b"".join(b for i, b in enumerate(blocks) if i % VAL_EVERY == VAL_AT)
    train = b"".join(b for i, b in enumerate(blocks) if i % VAL_EVERY != VAL_AT)
    return train, val


def _build(tmp: Path) -> None:
    train, val = split(corpus_text())
    (tmp / "public").mkdir()
    (tmp / "hidden").mkdir()
    (tmp / "public" / "train.bin").write_bytes(train)
    (tmp / "hidden" / "val.bin").write_bytes(val)


def _int_constant(source: str, name: str) -> int | None:
    m = re.search(rf"^{name}\s*=\s*(\d+)\b", source, re.MULTILINE)
    return int(m.group(1)) if m else None


def project_artifact_bytes(train_py: str, run_py_bytes: int) -> int | None:
    """Artifact bytes the starting architecture would have with these tunables, or None.

    Counts ByteGPT's matrices at QUANT_BITS (+ a float32 scale per row) and its vectors at
    float16, the file header, run.py, and assumes lzma saves COMPRESSION_ALLOWANCE. Exact
    for the starting recipe's family; a different architecture should opt out with the line
    `# size-projection: off` (the measured artifact is checked against the cap regardless).
    """
    if SIZE_OPT_OUT in train_py:
        return None
    t = {x.name: int(x.value) for x in parse_tunables(train_py)}
    if not {"N_LAYER", "D_MODEL", "BLOCK", "QUANT_BITS"} <= t.keys():
        return None
    n_head = _int_constant(train_py, "N_HEAD") or 4
    d, bits, layers = t["D_MODEL"] // n_head * n_head, t["QUANT_BITS"], t["N_LAYER"]
    mats = [(256, d), (t["BLOCK"], d), (256, d)] + layers * [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d)]
    vector_params = layers * 4 * d + 2 * d
    payload = sum(math.ceil(r * c * bits / 8) + 4 * r for r, c in mats) + 2 * vector_params
    header = 8 + 96 + 48 * (len(mats) + 2 * layers + 2)
    return int(header + payload * COMPRESSION_ALLOWANCE + run_py_bytes)


@dataclass(frozen=True)
class TinyGolf(RecipeTask):
    """The tiny-golf task (see the module docstring)."""

    def prepare_data(self, root: Path) -> DataDirs:
        """public/train.bin and hidden/val.bin under `root`, from the verified corpus."""
        return write_data_dirs(Path(root), DATA_VERSION, _build)

    def hidden_sources(self) -> list[Path]:
        """This task's data/ (the whole corpus) and the Debian package's copies, if present."""
        return existing([CORPUS.parent, *map(Path, _DEBIAN_COPIES), *map(Path, glob.glob(_DEBIAN_DEBS))])

    def project_bytes(self, tree: Path) -> int | None:
        train_py = Path(tree) / "train.py"
        if not train_py.is_file():
            return None
        run_py = Path(tree) / "run.py"
        return project_artifact_bytes(train_py.read_text(errors="replace"),
                                      run_py.stat().st_size if run_py.is_file() else 0)

    def finalize(self, m: Measurements) -> Verdict:
        """Score = val_bpb, in the reference classifier's order of checks.

        eval over budget, train over budget, no artifact (crash), artifact over the cap
        (size_blocked), no scorer result (crash), answers not distributions (disqualified),
        artifact died or hung mid-eval (crash), else valid.
        """
        s = m.scorer or {}
        # Budgets are checked on the budget clock (CPU seconds: the evaluator enforced them so
        # while the phases ran); a busy machine stretches wall time, which is kept beside them.
        clock = self.limits.budget_clock
        train_s = max(m.seconds("train", clock), default=None)
        eval_s = max(m.seconds("eval", clock), default=None)
        metrics: dict[str, Any] = {
            "val_bpb": s.get("val_bpb"), "tokens": s.get("tokens"),
            "artifact_bytes": m.artifact_bytes, "artifact_cap_bytes": self.limits.artifact_cap_bytes,
            "train_s": train_s, "eval_s": eval_s, "budget_clock": clock,
            "train_wall_s": max(m.wall_s.get("train", []), default=None),
            "eval_wall_s": max(m.wall_s.get("eval", []), default=None),
        }
        status, failure = self._classify(m, s, train_s, eval_s)
        score = float(s["val_bpb"]) if status == "valid" else None
        return Verdict(status=status, score=score, metrics=metrics, failure=failure)

    def _classify(self, m: Measurements, s: dict[str, Any], train_s: float | None,
                  eval_s: float | None) -> tuple[str, str]:
        budgets, cap = self.limits.phase_budgets_s, self.limits.artifact_cap_bytes
        unit = "CPU-s" if self.limits.budget_clock == "cpu" else "s"
        if eval_s is not None and eval_s > budgets["eval"]:
            return "eval_budget_overrun", f"eval took {eval_s:.1f} {unit} > budget {budgets['eval']:.0f} {unit}"
        if train_s is not None and train_s > budgets["train"]:
            return "train_budget_overrun", f"train took {train_s:.1f} {unit} > budget {budgets['train']:.0f} {unit}"
        if m.artifact_bytes is None:
            return "crash", "no artifact/ was written"
        if cap is not None and m.artifact_bytes > cap:
            return "size_blocked", f"artifact {m.artifact_bytes:,} bytes > cap {cap:,} bytes"
        if "valid" not in s:
            return "crash", "the scorer returned no result"
        if not s["valid"]:
            kind = s.get("invalid_kind", "?")
            status = "disqualified" if kind == "malformed" else "crash"
            return status, f"artifact answers {kind}: {s.get('reason', '')}"
        return "valid", ""


TASK = TinyGolf(
    name="tiny-golf",
    description=(
        "Lowest validation bits per byte of a byte-level language model trained in 60 s on a "
        f"2-core CPU, whose artifact (weights + the code to run them) fits {ARTIFACT_CAP:,} bytes; "
        "a CPU mirror of Parameter Golf. Corpus: Ambrose Bierce's The Devil's Dictionary "
        "(public domain). Score: val_bpb measured by the harness, lower is better."
    ),
    folder=FOLDER,
    editable=("train.py", "run.py"),
    entrypoint="train.py",
    metric=Metric(name="val_bpb", unit="bpb", lower_is_better=True),
    limits=Limits(
        phase_budgets_s={"smoke": 60.0, "train": 60.0, "eval": 60.0},
        artifact_cap_bytes=ARTIFACT_CAP,
        scratch_bytes=128 << 20,
        budget_clock="cpu",  # CPU seconds: a busy machine must not turn a run into an overrun
    ),
    run_plan=RunPlan(
        phases=(
            Phase(name="smoke", argv=("{python}", "train.py"), kind="smoke",
                  outputs=("artifact",), overrun_status="preflight_crash"),
            Phase(name="train", argv=("{python}", "train.py"), kind="main",
                  outputs=("artifact",), overrun_status="train_budget_overrun"),
        ),
        seeds=1,
        interactive_eval=InteractiveEval(artifact_dir="artifact", argv=("{python}", "run.py")),
        confirm_runs=3,  # a re-run pair is two trainings of a minute each: three pairs per candidate
    ),
    resources=Resources(gpus=0, nproc_per_trial=1),
    calibration_seeds=3,
)
