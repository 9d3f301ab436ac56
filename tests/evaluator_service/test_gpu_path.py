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


SEED_RECIPE = """\
import json, os, time
t0 = time.time()
time.sleep(1.0)
xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
json.dump([x % 2 for x in xs], open("preds.json", "w"))
json.dump({"cvd": os.environ["CUDA_VISIBLE_DEVICES"], "uid": os.getuid(), "seed": os.environ["AR_SEED"],
           "start": t0, "end": time.time()}, open("who.json", "w"))
if os.environ["AR_SEED"] == os.environ.get("FAIL_SEED"):
    raise SystemExit("seed failed on purpose")
"""


WHO_SCORER = """\
import json, os, pathlib
out = pathlib.Path(os.environ["AR_OUTPUTS"]) / "train"
who = [json.loads((out / str(i) / "who.json").read_text()) for i in range(int(os.environ["AR_SEEDS"]))]
pairs = ",".join(f"{w['seed']}:{w['cvd']}:{w['uid']}" for w in who)
at_once = max(sum(v["start"] <= w["start"] < v["end"] for v in who) for w in who)
pathlib.Path(os.environ["AR_RESULT"]).write_text(json.dumps({"error": f"{pairs};{at_once}"}))
"""


def _spread_task(toy, seeds: int, env: dict | None = None, **kw):
    task, data = toy(SEED_RECIPE, gpus=3, seeds=seeds, outputs=("preds.json", "who.json"),
                     budgets={"train": 30.0}, **kw)
    phases = tuple(p.model_copy(update={"gpus_per_process": 1, "env": env or {}}) for p in task.run_plan.phases)
    task.run_plan = task.run_plan.model_copy(update={"phases": phases})
    return task, data


@pytest.mark.timeout(30)
def test_seeds_spread_over_the_leased_gpus_one_each_and_timed_apart(toy, sandbox):
    task, data = _spread_task(toy, seeds=5, scorer=WHO_SCORER)
    lease = SlotPool(["2", "5", "7"]).acquire(3)
    seen: list[dict] = []
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox, data_dirs=data,
                   lease=lease, progress=lambda m: seen.append({"msg": m}))
    pairs, at_once = out.failure.split(";")
    assert at_once == "3"  # the most seeds running at the same moment
    who = [w.split(":") for w in pairs.split(",")]  # the scorer reports seed:GPU:uid per seed
    assert [(s, g) for s, g, _ in who] == [("0", "2"), ("1", "5"), ("2", "7"), ("3", "2"), ("4", "5")], who
    assert len({u for _, _, u in who[:3]}) == 3  # each process of a wave has a slot uid of its own
    # two waves (3 + 2 seeds) of ~1 s each; every seed timed on its own, about 1 s
    assert 1.0 <= out.timings["train"] < 1.8 and out.timings["total"] < 8.0, out.timings
    assert [m["msg"] for m in seen if m["msg"].startswith("train")] == [
        "train seeds 1-3/5 on 3 GPU slot(s)", "train seeds 4-5/5 on 2 GPU slot(s)"]


def test_a_failing_seed_stops_the_others_of_its_wave(toy, sandbox):
    task, data = _spread_task(toy, seeds=3, env={"FAIL_SEED": "1"})
    recipe = task.recipe_dir() / "recipe.py"
    recipe.write_text(recipe.read_text().replace("time.sleep(1.0)",
                                                 "time.sleep(0.2 if os.environ['AR_SEED'] == '1' else 20)"))
    lease = SlotPool(["0", "1", "2"]).acquire(3)
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox, data_dirs=data,
                   lease=lease)
    assert out.status == "crash" and "train (seed 1)" in out.failure and "on purpose" in out.failure
    assert out.timings["total"] < 4.0  # the two sleeping seeds were stopped, not waited for


FAKE_SMI = """#!/bin/sh
# a stand-in for nvidia-smi at the device seam: two H100s, memory in use from FAKE_GPU_USED_MIB
case "$*" in
  *name,driver_version,memory.total*) for i in $(echo "$4" | tr , ' '); do echo "NVIDIA H100 80GB HBM3, 550.54.15, 81559"; done ;;
  *memory.used*) for i in $(echo "$4" | tr , ' '); do echo "${FAKE_GPU_USED_MIB:-0}"; done ;;
  *) exit 1 ;;
esac
"""


@pytest.mark.timeout(30)
def test_every_trial_records_what_it_ran_on_and_its_peak_memory(toy, sandbox, tmp_path, monkeypatch):
    import importlib.metadata

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GPU_USED_MIB", "39045")
    recipe = ("import json, os, time\nhog = bytearray(60 << 20)\ntime.sleep(1.5)\n"
              "json.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n")
    task, data = toy(recipe, gpus=1, budgets={"train": 20.0})
    out = evaluate(task, TrialSpec(task="toy", tree=task.recipe_dir()), sandbox=sandbox, data_dirs=data,
                   lease=SlotPool(["1"]).acquire(1))
    assert out.status == "valid", out.failure
    env = out.metrics["env"]
    assert (env["gpu"], env["driver"], env["gpu_memory_mib"]) == ("NVIDIA H100 80GB HBM3", "550.54.15", 81559)
    assert env["torch"] == importlib.metadata.version("torch") and "cuda" in env
    assert env["peak_gpu_mib"]["train"] == 39045
    assert env["peak_rss_mib"]["train"] >= 60
