"""Digits speedrun: train a small classifier on 8x8 handwritten digits, as fast as possible.

The evaluator times this whole process from outside (interpreter start included) and scores
predictions.txt against test labels this script never sees. Mean test accuracy over the seeds
must stay at or above the gate (see knowledge/INIT.md); under that constraint, faster wins.

Reads:  $AR_DATA/train_x.npy (N, 64) floats in [0, 16], $AR_DATA/train_y.npy (N,) ints 0-9,
        $AR_DATA/test_x.npy (M, 64) floats, no labels.
Writes: predictions.txt, M lines, one predicted digit (0-9) per line, in test_x order.
Env:    AR_SEED (seed), AR_THREADS (CPU threads), AR_SMOKE ("1": one cheap epoch).
"""

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --- tunables ---
EPOCHS = 30  # tunable int [1, 60] hint=lower owner=opt
BATCH_SIZE = 32  # tunable int [8, 512] log hint=higher owner=opt
LR = 0.002  # tunable float [1e-4, 0.05] log owner=opt
HIDDEN = 256  # tunable int [16, 1024] log owner=arch
WEIGHT_DECAY = 0.0001  # tunable float [1e-6, 0.01] log owner=reg
LABEL_SMOOTHING = 0.05  # tunable float [0.0, 0.3] owner=loss
# --- end tunables ---

MAX_THREADS = 1  # matmuls this small gain nothing from a second thread, and it can spin

SEED = int(os.environ.get("AR_SEED", "0"))
THREADS = min(int(os.environ.get("AR_THREADS", "0")) or os.cpu_count() or 1, MAX_THREADS)
SMOKE = os.environ.get("AR_SMOKE", "0") == "1"
DATA = Path(os.environ.get("AR_DATA", "/data"))


def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load the public split and scale pixels to [0, 1]."""
    train_x = torch.from_numpy(np.load(DATA / "train_x.npy")).float() / 16.0
    train_y = torch.from_numpy(np.load(DATA / "train_y.npy")).long()
    test_x = torch.from_numpy(np.load(DATA / "test_x.npy")).float() / 16.0
    return train_x, train_y, test_x


class MLP(nn.Module):
    """Two hidden layers with ReLU."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.out(x)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    """Adam with a cosine learning-rate decay over all steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=LABEL_SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch == epochs - 1 or epoch % 10 == 0:
            print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}")


def main() -> None:
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    train_x, train_y, test_x = load_data()
    model = MLP(HIDDEN)
    train(model, train_x, train_y, epochs=1 if SMOKE else EPOCHS)
    model.eval()
    with torch.no_grad():
        preds = model(test_x).argmax(dim=1).tolist()
    Path("predictions.txt").write_text("".join(f"{p}\n" for p in preds))
    # Informational only: the evaluator measures time from outside and never reads this.
    print(f"wrote {len(preds)} predictions in {time.perf_counter() - t0:.2f}s (smoke={SMOKE})")


if __name__ == "__main__":
    main()
