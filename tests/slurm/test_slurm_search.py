"""A digits-speedrun search end to end on a real single-node SLURM cluster, as a user types it:
`autoresearch init --backend slurm` (its calibration runs as SLURM jobs too), then
`autoresearch run`. While it runs, one trial's job is killed from outside with `scancel` (the
trial is re-queued and finishes once, in a second job) and another trial is cancelled in the
lineage, as a deadline would (the cancel reaches `scancel`). Every evaluation was a SLURM job of
its own, named after its trial."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lineage.models import TrialStatus
from lineage.state import StateDir
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1200)]

CLI = [sys.executable, "-m", "client.cli"]
TRIALS = 4


def _jobs(cluster) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Every job allocation the cluster ran or runs: id, name, state."""
    out = cluster.run("sacct", "-X", "-n", "-P", "-a", "-S", "now-2hours", "-o", "JobIDRaw,JobName,State")
    rows = [dict(zip(("id", "name", "state"), line.split("|"))) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r["name"].startswith("ar-digits-speedrun")]


def _running(cluster) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(job id, name) of the search's trial jobs SLURM runs now."""
    out = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%j")
    pairs = [tuple(line.split("|", 1)) for line in out.splitlines() if line.strip()]
    return [(i, n) for i, n in pairs if n.startswith("ar-digits-speedrun-exp")]  # type: ignore[misc]


def _exp(name: str) -> int:
    return int(name.rsplit("-exp", 1)[1])


def test_a_digits_search_runs_end_to_end_on_slurm(tmp_path: Path, slurm_cluster) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state"
    init = subprocess.run([*CLI, "init", "--task", "digits-speedrun", "--state", str(state), "--backend", "slurm",
                           "--backend-option", "max_jobs=2", "--backend-option", "poll_s=0.5",
                           "--calibration-seeds", "2", "--confirm", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert init.returncode == 0, init.stderr[-3000:]
    assert "backend slurm" in init.stdout
    calibration = [j for j in _jobs(slurm_cluster) if j["name"] == "ar-digits-speedrun"]
    assert len(calibration) == 2 and all(j["state"] == "COMPLETED" for j in calibration), calibration

    log = (tmp_path / "run.log").open("w")
    # one session at a time: the budget is never reached before the cancel, so a cancelled trial
    # (which does not count) is always replaced and TRIALS trials count in the end
    run = subprocess.Popen([*CLI, "run", "--task", "digits-speedrun", "--state", str(state),
                            "--trials", str(TRIALS), "--agent", "scripted", "--seed", "0", "--concurrency", "1"],
                           cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    killed = cancelled = None
    try:
        deadline = time.monotonic() + 900
        while (killed is None or cancelled is None) and run.poll() is None:
            assert time.monotonic() < deadline, "no trial job ran"
            for job_id, name in _running(slurm_cluster):
                if killed is None:  # killed from outside: SLURM's doing, not ours
                    slurm_cluster.run("scancel", job_id)
                    killed = (job_id, _exp(name))
                elif cancelled is None and _exp(name) != killed[1]:  # the search cancels it
                    sd = StateDir.open(state)
                    try:
                        sd.store.cancel_trial(sd.search_id, _exp(name), "cut short by the test, as a deadline would")
                    finally:
                        sd.close()
                    cancelled = (job_id, _exp(name))
                    break
            time.sleep(0.3)
        assert run.wait(900) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(60)
        log.close()
    assert killed is not None and cancelled is not None

    sd = StateDir.open(state)
    try:
        rows = {t.exp_id: t for t in sd.store.list_trials(sd.search_id, include_baseline=False)}
        assert sd.search.config.backend == "slurm"
    finally:
        sd.close()
    jobs = _jobs(slurm_cluster)
    trial_jobs = [j for j in jobs if "-exp" in j["name"]]
    by_id = {j["id"]: j for j in trial_jobs}

    # the job killed from outside: its trial was re-queued and finished once, in a second job
    lost = rows[killed[1]]
    assert by_id[killed[0]]["state"].startswith("CANCELLED"), by_id[killed[0]]  # "CANCELLED by <uid>"
    assert "re-queued: the infrastructure lost attempt 1" in lost.notes and lost.attempts == 2, lost
    assert lost.status.is_finished() and lost.status != TrialStatus.CANCELLED, lost
    finished = Counter(_exp(j["name"]) for j in trial_jobs if j["state"] == "COMPLETED")
    assert finished[killed[1]] == 1

    # the trial the search cancelled: its cancel reached scancel
    assert rows[cancelled[1]].status == TrialStatus.CANCELLED
    assert by_id[cancelled[0]]["state"].startswith("CANCELLED"), by_id[cancelled[0]]

    # every other trial ran as one SLURM job of its own, and each trial finished exactly once
    counted = [t for t in rows.values() if t.status not in (TrialStatus.CANCELLED, TrialStatus.INFRA_ERROR)]
    assert len(counted) == TRIALS and all(t.status.is_finished() for t in counted), rows
    for exp, t in rows.items():
        if exp not in (killed[1], cancelled[1]):
            assert finished[exp] == 1 and t.attempts == 1, (exp, t.status, [j for j in trial_jobs if _exp(j["name"]) == exp])
    assert len(set(by_id)) == len(trial_jobs)
