"""tiny-golf: the best byte-level language model whose artifact fits the size cap.

Trains ByteGPT (defined in run.py) on $AR_DATA/train.bin within the train budget, then writes
the artifact: artifact/model.bin (quantized, compressed weights) + artifact/run.py (the code
that runs them). The evaluator measures the artifact's bytes, then its bits per byte on
held-out text this script never sees, by talking to artifact/run.py (protocol in run.py).

Env: AR_SEED (seed), AR_THREADS (CPU threads), AR_SMOKE ("1": a few steps), AR_DATA.
"""

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from run import ByteGPT, load, save

START = time.perf_counter()
START_CPU = time.process_time()  # the train budget is in CPU seconds of the whole process tree

# --- tunables ---
N_LAYER = 2  # tunable int [1, 6] owner=arch,meta
D_MODEL = 96  # tunable int [32, 256] log owner=arch,meta
BLOCK = 32  # tunable int [8, 128] log owner=arch,meta
BATCH_SIZE = 64  # tunable int [8, 256] log owner=opt,meta
STEPS = 600  # tunable int [50, 4000] log owner=opt,meta
LR = 0.006  # tunable float [0.0003, 0.03] log owner=opt,meta
QUANT_BITS = 8  # tunable int [4, 8] owner=quant,meta
# --- end tunables ---

N_HEAD = 4
WARMUP = 50
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
TIME_LIMIT_S = 35.0  # CPU seconds: on a slow machine the schedule ends here; the budget is 60
LOCAL_VAL_BYTES = 16384  # tail of train.bin held out for the printed sanity check
MAX_THREADS = 1  # a second thread helps only on idle cores; on a busy CPU it spins and stalls

SEED = int(os.environ.get("AR_SEED", "0"))
THREADS = min(int(os.environ.get("AR_THREADS", "0")) or os.cpu_count() or 1, MAX_THREADS)
SMOKE = os.environ.get("AR_SMOKE", "0") == "1"
DATA = Path(os.environ.get("AR_DATA", "/data"))
ARTIFACT = Path("artifact")


def get_batch(data: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH_SIZE random windows of BLOCK bytes and their next-byte targets."""
    ix = torch.randint(0, len(data) - BLOCK - 1, (BATCH_SIZE,), generator=gen)
    offsets = torch.arange(BLOCK + 1)
    win = data[ix[:, None] + offsets]
    return win[:, :-1], win[:, 1:]


def progress_at(step: int, steps: int) -> float:
    """Fraction of the run done: by steps, or by CPU time if the machine is slow."""
    return max(step / steps, (time.process_time() - START_CPU) / TIME_LIMIT_S)


def lr_at(step: int, progress: float) -> float:
    """Linear warmup over WARMUP steps, then cosine decay to 10% of LR by progress 1."""
    warm = min(1.0, (step + 1) / WARMUP)
    return LR * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(model: ByteGPT, data: torch.Tensor, steps: int) -> None:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": other, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(SEED)
    for step in range(steps):
        progress = progress_at(step, steps)
        if progress >= 1.0:
            print(f"time limit: stopping after {step} of {steps} steps")
            return
        for group in opt.param_groups:
            group["lr"] = lr_at(step, progress)
        x, y = get_batch(data, gen)
        loss = F.cross_entropy(model(x).view(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step}/{steps} loss {loss.item() / math.log(2):.3f} bpb "
                  f"t {time.perf_counter() - START:.1f}s")


@torch.no_grad()
def local_bpb(model: ByteGPT, data: torch.Tensor) -> float:
    """Bits per byte on held-out training text (a sanity check; the harness scores its own)."""
    model.eval()
    n = (len(data) - 1) // BLOCK * BLOCK
    x = data[:n].view(-1, BLOCK)
    y = data[1 : n + 1].view(-1, BLOCK)
    loss = F.cross_entropy(model(x).view(-1, 256), y.reshape(-1))
    return loss.item() / math.log(2)


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    raw = np.fromfile(DATA / "train.bin", dtype=np.uint8)
    data = torch.from_numpy(raw.astype(np.int64))
    train_data, val_data = data[:-LOCAL_VAL_BYTES], data[-LOCAL_VAL_BYTES:]
    model = ByteGPT(N_LAYER, D_MODEL // N_HEAD * N_HEAD, N_HEAD, BLOCK)
    print(f"params {sum(p.numel() for p in model.parameters()):,}")
    train(model, train_data, steps=3 if SMOKE else STEPS)
    ARTIFACT.mkdir(exist_ok=True)
    size = save(model, ARTIFACT / "model.bin", QUANT_BITS)
    shutil.copyfile(Path(__file__).with_name("run.py"), ARTIFACT / "run.py")
    total = sum(f.stat().st_size for f in ARTIFACT.rglob("*") if f.is_file())
    print(f"artifact: model.bin {size:,} bytes, total {total:,} bytes")
    if not SMOKE:
        print(f"local val bpb: float {local_bpb(model, val_data):.4f}, "
              f"quantized {local_bpb(load(ARTIFACT / 'model.bin'), val_data):.4f}")
    print(f"done in {time.perf_counter() - START:.1f}s")


if __name__ == "__main__":
    main()
