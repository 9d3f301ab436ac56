"""cifar-airbench96 scorer: each seed's test accuracy, from its predictions and the hidden labels.

Standalone and stdlib only (it runs in the scoring sandbox and imports nothing from the
project). It reads

  $AR_HIDDEN/test_labels.txt                   the true test labels, one per line
  $AR_OUTPUTS/train/<i>/predictions.txt        one predicted class (0-9) per line, in test order
  $AR_SEEDS                                    how many seeds ran (dirs 0..N-1 expected)

and writes one JSON object to $AR_RESULT (and prints it):

  {"n_test": 10000, "seeds": ["0", ...], "mean_accuracy": 0.9601, "std_accuracy": 0.0013,
   "per_seed": {"0": {"accuracy": 0.9603, "correct": 9603, "lines": 10000, "malformed": ""}},
   "missing_seeds": [], "malformed_seeds": []}

A predictions file is the trial's output, so it is read as hostile: at most MAX_BYTES, only
as a regular file inside the outputs dir (a symlink could point at the labels), and a line
that is not one digit counts as wrong. A missing file, a wrong line count, a bad line or an
oversized file is named in `malformed`; the task's finalize turns any of them into a crash.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path

PHASE = "train"
FILENAME = "predictions.txt"
LABELS = "test_labels.txt"
MAX_BYTES = 256 * 1024  # 10,000 lines of "d\n" are 20,000 bytes


def read_labels(hidden: Path) -> list[int]:
    return [int(x) for x in (hidden / LABELS).read_text().split()]


def read_capped(path: Path, root: Path) -> tuple[bytes, str]:
    """Up to MAX_BYTES of a regular file under `root`, and what is wrong with it ('' if nothing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return b"", "missing"
    if not stat.S_ISREG(st.st_mode):
        return b"", "not a regular file"
    if not path.resolve().is_relative_to(root.resolve()):
        return b"", "outside the outputs directory"
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
        data = f.read(MAX_BYTES + 1)
    return (data[:MAX_BYTES], f"larger than {MAX_BYTES} bytes") if len(data) > MAX_BYTES else (data, "")


def parse_line(line: str) -> int | None:
    """The class on one line (a single digit, surrounding spaces allowed), else None."""
    s = line.strip()
    return int(s) if len(s) == 1 and s in "0123456789" else None


def score_seed(path: Path, root: Path, labels: list[int]) -> dict:
    """Accuracy of one predictions file; absent and unreadable lines count as wrong."""
    data, problem = read_capped(path, root)
    lines = data.decode("ascii", errors="replace").splitlines()
    preds = [parse_line(line) for line in lines]
    correct = sum(p is not None and p == y for p, y in zip(preds, labels))
    bad = sum(p is None for p in preds)
    if not problem and len(lines) != len(labels):
        problem = f"{len(lines)} lines, expected {len(labels)}"
    if not problem and bad:
        problem = f"{bad} lines are not a single digit 0-9"
    return {"accuracy": correct / len(labels), "correct": correct, "lines": len(lines), "malformed": problem}


def seeds_to_score(outputs: Path) -> list[str]:
    """Seed dirs present under outputs/train, plus the N that AR_SEEDS expects (or a list of names)."""
    present = {p.name for p in (outputs / PHASE).iterdir()} if (outputs / PHASE).is_dir() else set()
    listed = os.environ.get("AR_SEEDS", "").strip()
    wanted = {str(i) for i in range(int(listed))} if listed.isdigit() else {
        s.strip() for s in listed.split(",") if s.strip()}
    return sorted(present | wanted, key=lambda s: (len(s), s))


def summarize(per_seed: dict[str, dict], missing: list[str], n_test: int) -> dict:
    accs = [r["accuracy"] for r in per_seed.values()]
    mean = sum(accs) / len(accs) if accs else 0.0
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    malformed = [s for s, r in per_seed.items() if r["malformed"] and s not in missing]
    return {"n_test": n_test, "seeds": list(per_seed), "per_seed": per_seed, "mean_accuracy": mean,
            "std_accuracy": std, "missing_seeds": missing, "malformed_seeds": malformed}


def main() -> int:
    hidden = Path(os.environ.get("AR_HIDDEN", "/hidden"))
    outputs = Path(os.environ.get("AR_OUTPUTS", "/outputs"))
    labels = read_labels(hidden)
    per_seed = {s: score_seed(outputs / PHASE / s / FILENAME, outputs, labels) for s in seeds_to_score(outputs)}
    missing = [s for s, r in per_seed.items() if r["malformed"] == "missing"]
    text = json.dumps(summarize(per_seed, missing, len(labels)), sort_keys=True)
    if os.environ.get("AR_RESULT"):
        Path(os.environ["AR_RESULT"]).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
