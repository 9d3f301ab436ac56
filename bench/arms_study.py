"""The arms study as a benchmark: `autoresearch study` with its figures printed.

    python bench/arms_study.py [--task digits-speedrun] [--repeats 3] [--trials 24]
                               [--arms roles,generic,single,lineage-off,random,tpe]
                               [--out runs/study] [--plot runs/study/arms.png] [--control random]

Every arm runs `--repeats` searches of `--trials` trials (scripted proposer for the paper's
arms; Optuna's random sampler and TPE as the LLM-free controls), each calibrating its own
baseline and confirming its candidate keeps; then the arms are compared with 95% bootstrap
intervals, each arm set against the control arm (the difference of the mean improvement and of
the mean best, with an interval from resampling both arms), and a plot of best-so-far curves
(median and quartile band per arm). A study that stopped resumes: finished searches are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.cli import app  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    app(["study", *([] if "--task" in args else ["--task", "digits-speedrun"]), *args])
