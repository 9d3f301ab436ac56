"""digits-speedrun scorer: accuracy of each seed's predictions against the hidden labels.

Standalone, stdlib only; it imports nothing from the project. It reads

  $AR_HIDDEN/test_y.txt                        one true label per line (never seen by trials)
  $AR_OUTPUTS/train/<seed>/predictions.txt     one predicted digit per line, in test order
  $AR_SEEDS                                    how many seeds ran (dirs 0..N-1 expected)

and writes one JSON object to $AR_RESULT (and to stdout):

  {"n_test": 500, "seeds": ["0", ...], "mean_accuracy": 0.98, "std_accuracy": 0.002,
   "per_seed": {"0": {"accuracy": 0.98, "correct": 490, "lines": 500, "malformed": ""}},
   "malformed_seeds": [], "missing_seeds": []}

Predictions files are hostile input. At most MAX_BYTES are read; a line that is not a single
digit counts as wrong; a missing line counts as wrong. A file that is missing, not a regular
file (a symlink could point at the hidden labels), too large, or has the wrong number of lines
is reported per seed, and the task's finalize turns it into a `crash`.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from pathlib import Path

PHASE = "train"
FILENAME = "predictions.txt"
MAX_BYTES = 64 * 1024
DIGIT = re.compile(r"\s*([0-9])\s*")


def read_labels(hidden: Path) -> list[int]:
    return [int(line) for line in (hidden / "test_y.txt").read_text().split()]


def read_capped(path: Path, root: Path) -> tuple[bytes, str]:
    """Read at most MAX_BYTES of a regular file inside `root`; return (data, problem)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return b"", "missing"
    if not stat.S_ISREG(st.st_mode):
        return b"", "not a regular file"
    if not path.resolve().is_relative_to(root.resolve()):
        return b"", "outside the outputs directory"
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return data[:MAX_BYTES], f"larger than {MAX_BYTES} bytes"
    return data, ""


def score_seed(path: Path, root: Path, labels: list[int]) -> dict:
    """Accuracy of one predictions file; every unparsable or absent line counts as wrong."""
    data, problem = read_capped(path, root)
    lines = data.decode("ascii", errors="replace").splitlines()
    correct = 0
    for line, truth in zip(lines, labels):
        m = DIGIT.fullmatch(line)
        correct += bool(m) and int(m.group(1)) == truth
    if not problem and len(lines) != len(labels):
        problem = f"{len(lines)} lines, expected {len(labels)}"
    if not problem and any(not DIGIT.fullmatch(line) for line in lines):
        bad = sum(not DIGIT.fullmatch(line) for line in lines)
        problem = f"{bad} lines are not a single digit 0-9"
    return {"accuracy": correct / len(labels), "correct": correct, "lines": len(lines),
            "malformed": problem}


def seeds_to_score(outputs: Path) -> list[str]:
    """Seed dirs present under outputs/train, plus those AR_SEEDS expects.

    AR_SEEDS is the number of seeds N (output dirs are named by seed index 0..N-1); a
    comma-separated list of dir names is accepted too.
    """
    present = {p.name for p in (outputs / PHASE).iterdir()} if (outputs / PHASE).is_dir() else set()
    listed = os.environ.get("AR_SEEDS", "").strip()
    if listed.isdigit():
        wanted = {str(i) for i in range(int(listed))}
    else:
        wanted = {s.strip() for s in listed.split(",") if s.strip()}
    return sorted(present | wanted, key=lambda s: (len(s), s))


def main() -> int:
    hidden = Path(os.environ.get("AR_HIDDEN", "/hidden"))
    outputs = Path(os.environ.get("AR_OUTPUTS", "/outputs"))
    labels = read_labels(hidden)
    per_seed, missing = {}, []
    for seed in seeds_to_score(outputs):
        r = score_seed(outputs / PHASE / seed / FILENAME, outputs, labels)
        if r["malformed"] == "missing":
            missing.append(seed)
        per_seed[seed] = r
    accs = [r["accuracy"] for r in per_seed.values()]
    mean = sum(accs) / len(accs) if accs else 0.0
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    result = {
        "n_test": len(labels), "seeds": list(per_seed), "per_seed": per_seed,
        "mean_accuracy": mean, "std_accuracy": std, "missing_seeds": missing,
        "malformed_seeds": [s for s, r in per_seed.items() if r["malformed"] and s not in missing],
    }
    text = json.dumps(result, sort_keys=True)
    if os.environ.get("AR_RESULT"):
        Path(os.environ["AR_RESULT"]).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
