"""nanochat-d12's compute budget: training wall seconds and tokens read, both counted by the harness.

Two lines, both outside the trial's control:

1. **Wall time.** The train phase (the whole `torchrun` process tree on the leased GPUs:
   start-up, compile, data loading, the recipe's own validation evals, the checkpoint write)
   is timed by the evaluator and killed at `train_s`; a trial killed there is
   `train_budget_overrun`. Nothing inside the trial decides what counts: it is all counted.
2. **Tokens.** The data loader logs every row group it reads (the patch's ledger); the scorer
   prices each with the build's own count of its tokens (BOS + document, the tokenizer the
   build trained), so the figure is the harness's, not the recipe's. More than `tokens` is
   `train_budget_overrun` too, however fast it ran: a faster step may win, more data may not.
   A checkpoint that claims more trained tokens (step x batch) than its ledger read is
   disqualified (`ledger`): the ledger left out data.

`calibrate(runs)` sets both from the baseline recipe's calibration runs on the user's GPUs:
the largest measured train time and the largest token count, each plus `slack` (10 %).
A search records it when it is created (`NanochatD12.calibration_env`) and runs every
trial under it; the calibration runs themselves, and a search that recorded none, run under the
task's defaults (`DEFAULT`): a wall backstop (the paper's 90-minute cap, so any GPU
calibrates) and the token count of d12's compute-optimal horizon (ratio 12: 2,520 steps x
524,288 = 1.32B trained tokens) with the loader's cropping allowance (bestfit packing leaves
out about a third of what it reads) and the slack. README.md sets both beside the paper's figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ENV_TRAIN_S = "AR_TRAIN_BUDGET_S"
ENV_TOKENS = "AR_TOKEN_BUDGET"
SLACK = 0.10
D12_TRAINED_TOKENS = 2520 * 524288  # ratio 12 x 110.1M scaling params, in whole 524,288-token steps
READ_PER_TRAINED = 1.6  # bestfit cropping: the loader reads about 1/0.65 of what it trains on, plus its buffer


@dataclass(frozen=True)
class Budget:
    """What a trial may spend: train-phase wall seconds, and tokens of training data read."""

    train_s: float
    tokens: int
    slack: float = SLACK
    source: str = "default"  # "default", "calibrated" or a profile's name

    def env(self) -> dict[str, str]:
        """The phase environment that carries it (the recipe may read it; the harness does)."""
        return {ENV_TRAIN_S: f"{self.train_s:.0f}", ENV_TOKENS: str(self.tokens)}


DEFAULT = Budget(train_s=5400.0, tokens=math.ceil(D12_TRAINED_TOKENS * READ_PER_TRAINED * (1 + SLACK)))


def calibrate(runs: Iterable[Mapping[str, Any]], slack: float = SLACK) -> Budget:
    """The budget from calibration runs' metrics (`train_s`, `tokens_read`): largest of each, plus slack.

    Raises:
        ValueError: no run measured both.
    """
    measured = [(float(r["train_s"]), int(r["tokens_read"])) for r in runs
                if r.get("train_s") is not None and r.get("tokens_read") is not None]
    if not measured:
        raise ValueError("no calibration run measured both its train time and its tokens read")
    train_s = max(t for t, _ in measured) * (1 + slack)
    tokens = math.ceil(max(n for _, n in measured) * (1 + slack))
    return Budget(train_s=train_s, tokens=tokens, slack=slack, source="calibrated")


def over(tokens_read: int | None, budget_tokens: int | None) -> str:
    """Why `tokens_read` breaks the token budget, or '' when it does not."""
    if tokens_read is None or budget_tokens is None or tokens_read <= budget_tokens:
        return ""
    return (f"the loader read {tokens_read:,} tokens of training data (counted by the harness), over the "
            f"budget of {budget_tokens:,}: train on at most the baseline's data, faster if you can")
