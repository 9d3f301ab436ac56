"""nanochat-d12 end to end on a CPU: the smoke configuration through the real evaluator and
sandbox (train -> checkpoint -> protected CORE + bpb), the compute budget enforced, and the
recipe tree through the real MCP tools.

One synthetic task root is prepared for the module (the real `prepare` and build: the tree
patched, the rustbpe tokenizer trained, the bundle unzipped), and the baseline trial is run
once and shared: the budget tests calibrate from it, as `calibrate` would. Everything here is
slow and marked so.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest

from tasks.nanochat_d12 import budget
from tasks.nanochat_d12.task import NAME
from tasks.registry import with_profile
from tests.tasks import nc_fixture
from tests.tasks.nc_fixture import UPSTREAM

pytestmark = [pytest.mark.slow, pytest.mark.skipif(UPSTREAM is None, reason="the pinned nanochat tree "
                                                   "(../shared/upstream/nanochat) is not on this machine")]
FAKE_CORE = '\nprint0("Step 00060 | CORE metric: 0.9999")\nprint("CORE metric: 0.9999")\n'
SMOKE_MODE = 'if os.environ.get("AR_SMOKE") == "1":'
TWICE_AS_LONG = (SMOKE_MODE, f"args.num_iterations *= 2  # train twice as long (on twice the data)\n{SMOKE_MODE}")
FOUR_TIMES_AS_LONG = (SMOKE_MODE, f"args.num_iterations *= 4  # train four times as long\n{SMOKE_MODE}")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("nanochat") / "root"
    return with_profile(nc_fixture.prepared_task(root), "cpu-smoke")


def _evaluate(task, tree: Path, work: Path, smoke: bool = True, lease=None):
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from evaluator_service.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig(workdir=work / "evaluator", uid_base=64000))
    try:
        data = prepare_data(task, work / "data")
        spec = TrialSpec(task=NAME, profile=task.profile, tree=tree, seeds=1, gpus=task.resources.gpus, smoke=smoke)
        return evaluate(task, spec, sandbox=sandbox, data_dirs=data, lease=lease)
    finally:
        sandbox.close()


def _edited(task, dest: Path, old: str, new: str) -> Path:
    shutil.copytree(task.recipe_dir(), dest)
    script = dest / "scripts" / "base_train.py"
    text = script.read_text()
    assert text.count(old) == 1, old
    script.write_text(text.replace(old, new))
    return dest


@pytest.fixture(scope="module")
def baseline(prepared, tmp_path_factory):
    """The starting recipe, plus a line that prints a fake CORE, through the evaluator."""
    work = tmp_path_factory.mktemp("baseline")
    tree = work / "recipe"
    shutil.copytree(prepared.recipe_dir(), tree)
    with open(tree / "scripts" / "base_train.py", "a") as f:
        f.write(FAKE_CORE)
    t0 = time.monotonic()
    out = _evaluate(prepared, tree, work)
    print(f"\nnanochat-d12 cpu-smoke through the sandbox in {time.monotonic() - t0:.0f} s: {out.timings}")
    return out


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_cpu_smoke_trains_checkpoints_and_gets_a_protected_core_and_bpb(baseline):
    out, m = baseline, baseline.metrics
    assert out.status == "valid", (out.failure, out.log_tail)
    assert out.score == m["core"] != 0.9999 and out.self_reported is False  # the printed CORE is ignored
    assert set(m["accuracy"]) == {"syn_mc", "syn_schema", "syn_lm"} and -1.0 <= out.score <= 1.0
    assert 0 < m["val_bpb"] < 20 and m["n_layer"] == 2 and m["probes"] >= 1 and m["challenges"] > 0
    assert 0 < m["tokens_trained_claim"] <= m["tokens_read"] <= m["token_budget"]
    assert m["tokens_trained_claim"] == 60 * 512 and m["epochs"] == 1
    assert {"smoke", "train", "score"} <= set(out.timings) and m["train_s"] > 0
    assert m["isolation"].startswith("landlock") or m["isolation"] == "none"


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_recipe_that_trains_twice_as_long_is_a_train_budget_overrun(prepared, baseline, tmp_path):
    """Under the budget calibrated from the baseline, by whichever line stops it first: the wall
    kill, or the tokens it read once it finished (on a shared CPU the wall clock is noise, so
    which one comes first is not the test's to decide; the two below pin each line)."""
    assert baseline.status == "valid", baseline.failure
    calibrated = prepared.with_budget(budget.calibrate([baseline.metrics]))
    tree = _edited(prepared, tmp_path / "recipe", *TWICE_AS_LONG)
    out = _evaluate(calibrated, tree, tmp_path, smoke=False)
    assert (out.status, out.score) == ("train_budget_overrun", None), (out.failure, out.timings)
    wall = f"exceeded its {calibrated.limits.phase_budgets_s['train']:g} s budget"
    tokens = f"over the budget of {calibrated.trial_budget().tokens:,}"
    assert wall in out.failure or tokens in out.failure, out.failure


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_recipe_that_trains_past_the_wall_budget_is_killed_there_however_little_it_reads(prepared, baseline,
                                                                                          tmp_path):
    assert baseline.status == "valid", baseline.failure
    b = budget.calibrate([baseline.metrics])
    tight = prepared.with_budget(dataclasses.replace(b, tokens=b.tokens * 20))  # data is not what stops it
    # four times the steps: its CPU seconds alone exceed the wall budget unless the baseline was
    # measured at under a third of a core, so a quieter machine cannot let it finish in time
    tree = _edited(prepared, tmp_path / "recipe", *FOUR_TIMES_AS_LONG)
    out = _evaluate(tight, tree, tmp_path, smoke=False)
    assert out.status == "train_budget_overrun", (out.failure, out.timings)
    assert f"exceeded its {b.train_s:g} s budget" in out.failure and "score" not in out.timings


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_recipe_that_reads_more_tokens_than_the_budget_is_flagged_however_fast(prepared, baseline, tmp_path):
    assert baseline.status == "valid", baseline.failure
    b = budget.calibrate([baseline.metrics])
    roomy = prepared.with_budget(dataclasses.replace(b, train_s=b.train_s * 20))  # time is not what stops it
    tree = _edited(prepared, tmp_path / "recipe", *TWICE_AS_LONG)
    out = _evaluate(roomy, tree, tmp_path, smoke=False)
    assert out.status == "train_budget_overrun", (out.failure, out.log_tail)
    assert "tokens of training data (counted by the harness), over the budget" in out.failure
    assert out.metrics["tokens_read"] > b.tokens and out.metrics["train_s"] < roomy.limits.phase_budgets_s["train"]


# One write per rank, so the ranks' lines do not interleave; rank 0 fails once every other rank
# has written its line, alone, so the log tail holds every line and torchrun's report of one failure.
RANKS = """import glob, os, sys, time
os.write(1, f"<rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} on {os.environ['CUDA_VISIBLE_DEVICES']}: "
            f"{' '.join(sys.argv[1:])}>\\n".encode())
open(f"said.{os.environ['RANK']}", "w").close()
if os.environ["RANK"] == "0":
    deadline = time.monotonic() + 60
    while len(glob.glob("said.*")) < int(os.environ["WORLD_SIZE"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    sys.exit(3)
"""


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_the_full_task_starts_one_torchrun_worker_per_leased_gpu(prepared, tmp_path):
    """Eight fake GPUs (ids only, at the device seam): the train phase is torchrun with eight
    workers, each seeing every leased device, given the harness's arguments without the "--"."""
    from evaluator_service.slots import SlotPool

    full = nc_fixture.fixture_task(prepared.root)  # the task as registered: eight GPUs, no profile
    assert full.resources.gpus == 8 and full.profile == ""
    tree = tmp_path / "recipe"
    shutil.copytree(prepared.recipe_dir(), tree)
    (tree / "scripts" / "base_train.py").write_text(RANKS)
    lease = SlotPool([str(i) for i in range(10)]).acquire(8)
    out = _evaluate(full, tree, tmp_path, smoke=False, lease=lease)
    assert out.status == "crash" and out.failure.startswith("train"), (out.failure, out.log_tail)
    for rank in range(8):
        assert f"<rank {rank} of 8 on 0,1,2,3,4,5,6,7: --run=dummy --depth=12 --model-tag=d12>" in out.log_tail


# ---------------------------------------------------------------- the tree through the MCP tools


async def _call(client, name: str, args: dict | None = None):
    res = await client.call_tool(name, args or {}, raise_on_error=False)
    assert not res.is_error, res.content[0].text
    return res.structured_content


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_the_recipe_tree_goes_through_workspace_snapshot_and_diff_tools_bounded(prepared, tmp_path):
    from fastmcp import Client

    from servers.app.runtime import SearchRuntime
    from servers.app.init import Baseline, init_search
    from servers.suite import build_suite

    from tasks._prepare import use_task_root

    nc_fixture.LIVE = prepared  # a dotted task path, as a task outside the package would be named
    use_task_root(NAME, prepared.root)  # as `tasks prepare --root` would have remembered it
    try:
        init_search("tests.tasks.nc_fixture:LIVE", tmp_path / "state", confirm_runs=0,
                    baseline=Baseline(score=0.1, spread=0.01, n=3))
        rt = SearchRuntime.open(tmp_path / "state", workers=0)
    finally:
        use_task_root(NAME, None)
    timings = {}
    try:
        async with Client(build_suite(rt, "sys")) as c:
            t0 = time.monotonic()
            listing = await _call(c, "submission_list_workspace")
            timings["list"] = time.monotonic() - t0
            assert len(listing["files"]) == 48 and listing["total_bytes"] > 1_100_000
            log = await _call(c, "submission_read_workspace_file", {"path": "dev/LOG.md", "limit": 2000})
            assert len(log["content"]) <= 60_000 and log["next_offset"] is not None
            for path in ("nanochat/gpt.py", "nanochat/optim.py", "scripts/base_train.py", "dev/LOG.md", "uv.lock"):
                text = (await _call(c, "submission_read_workspace_file", {"path": path, "limit": 5}))["content"]
                body = (prepared.recipe_dir() / path).read_text()
                await _call(c, "submission_write_workspace_file", {"path": path, "content": body.upper()})
                assert text
            t0 = time.monotonic()
            diff = await _call(c, "submission_workspace_diff")
            timings["diff"] = time.monotonic() - t0
            assert len(diff["files_changed"]) == 5 and diff["truncated"] and len(diff["diff"]) <= 61_000
            assert "not shown:" in diff["diff"]
            t0 = time.monotonic()
            sub = await _call(c, "submission_submit_trial", {"hypothesis": "Shout.", "expected_delta": 0.0})
            timings["submit"] = time.monotonic() - t0
            exp = sub["exp_id"]
            files = await _call(c, "snapshot_list_snapshot_files", {"exp_id": exp})
            assert len(files["files"]) == 48
            sdiff = await _call(c, "snapshot_diff_snapshots", {"exp_id": exp, "base_exp": 0, "max_chars": 20_000})
            assert len(sdiff["files_changed"]) == 5 and sdiff["truncated"] and len(sdiff["diff"]) <= 21_000
            await _call(c, "snapshot_rebase_to", {"exp_id": 0})
            assert (await _call(c, "submission_workspace_diff"))["files_changed"] == []
    finally:
        rt.close()
    print(f"\ntree tools: {timings}")
    assert max(timings.values()) < 5.0, timings
