"""The GPU path on CPU: fake device ids, torchrun launch with one process per device, kill."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from evaluator_service.evaluate import evaluate
from evaluator_service.models import TrialSpec
from evaluator_service.slots import SlotPool

DDP_RECIPE = """\
import json, os
import torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
assert t.item() == world * (world + 1) / 2, t
assert world == 2 and os.environ["CUDA_VISIBLE_DEVICES"] == "3,6", os.environ["CUDA_VISIBLE_DEVICES"]
print("rank", rank, "of", world, "sees", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
if rank == 0:
    xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
    json.dump([x % 2 for x in xs], open("preds.json", "w"))
    json.dump({"world": world, "cvd": os.environ["CUDA_VISIBLE_DEVICES"]}, open("dist.json", "w"))
dist.destroy_process_group()
"""

HANG_RECIPE = """\
import os, time, torch.distributed as dist
dist.init_process_group("gloo")
open("/proc/self/comm", "w").write("{marker}"[:15])
os.write(1, f"<worker {dist.get_rank()} started>\\n".encode())  # one write: ranks do not interleave
time.sleep(300)
"""


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_torchrun_phase_runs_one_gloo_worker_per_leased_device(toy, sandbox):
    task, data = toy(DDP_RECIPE, torchrun=True, gpus=2, outputs=("preds.json", "dist.json"),
                     budgets={"train": 60.0})
    pool = SlotPool(["3", "6", "7"])
    lease = pool.acquire(2)
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=data, lease=lease)
    assert out.status == "valid", (out.failure, out.log_tail)
    assert lease.devices == ("3", "6")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_torchrun_overrun_kills_every_worker(toy, sandbox):
    marker = f"arw{uuid.uuid4().hex[:8]}"
    task, data = toy(HANG_RECIPE.replace("{marker}", marker), torchrun=True, nproc=2,
                     budgets={"train": 14.0})
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox, data_dirs=data)
    assert out.status == "train_budget_overrun", (out.failure, out.log_tail)
    assert "<worker 0 started>" in out.log_tail and "<worker 1 started>" in out.log_tail
    assert _comm_matches(marker[:15]) == []


def _comm_matches(comm: str) -> list[str]:
    hits = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                hits.append(pid)
        except OSError:
            continue
    return hits


def test_gpu_trial_on_a_lease_with_too_few_devices_is_an_infra_error(toy, sandbox):
    task, data = toy(gpus=2)
    lease = SlotPool(["0"]).acquire(1)
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=data, lease=lease)
    assert out.status == "infra_error" and "needs 2 GPU" in out.failure
