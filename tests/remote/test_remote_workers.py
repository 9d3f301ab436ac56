"""`autoresearch worker` processes as other hosts: one search shared, one worker killed mid-trial.

Each worker runs in a network namespace of its own that reaches only the test's PostgreSQL,
under its own hostname and slot locks (tests/remote/hosts.py), with real sandboxes. The
search's snapshots reach them through the database; nothing else is shared.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest

from lineage.models import NoiseMargin, SearchConfig, TrialStatus
from lineage.state import StateDir
from tests.remote import hosts as simulated
from tests.remote.sleeptask import recipe

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.postgres]

TASK = "tests.remote.sleeptask:SLEEP"


@pytest.fixture
def hosts():
    why = simulated.unavailable()
    if why is not None:
        pytest.skip(why)
    with simulated.SimulatedHosts(3) as made:
        yield made


def _search(state: Path, url: str, backend: str, trials: list[float], tmp: Path) -> StateDir:
    config = SearchConfig(task=TASK, backend=backend, margin=NoiseMargin(abs_delta=1e9), roster=("opt",))
    sd = StateDir.create(state, config, database_url=url)
    for i, sleep_s in enumerate(trials):
        tree = tmp / f"{state.name}-tree-{i}"
        tree.mkdir()
        (tree / "recipe.py").write_text(recipe(sleep_s, tag=f"{state.name} {i}"))
        sd.store.create_trial(sd.search_id, specialist="opt", snapshot=sd.snapshots.put_tree(tree))
    return sd


def _wait(what: str, cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _finished_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_trial_has_its_trial_rerun_on_another_host_once(hosts, tmp_path):
    db = "t_" + uuid.uuid4().hex[:10]
    hosts.create_database(db)
    url = hosts.local_url(db)
    sd = _search(tmp_path / "remote", url, "workers", [2.0] * 6 + [8.0], tmp_path)
    local = _search(tmp_path / "local", url, "local", [0.1], tmp_path)  # not the workers' to run
    sid, store = sd.search_id, sd.store
    victim = hosts.hosts[1]
    procs = {h.name: hosts.start_worker(h, db, "--slots", "1") for h in hosts.hosts}

    def victim_runs_a_trial() -> bool:
        return any(t.worker and t.worker.startswith(victim.name + ":")
                   for t in store.list_trials(sid, statuses=[TrialStatus.RUNNING]))

    _wait("the victim to run a trial", victim_runs_a_trial, 120)
    time.sleep(1.0)  # its sandbox is up
    killed = next(t for t in store.list_trials(sid, statuses=[TrialStatus.RUNNING])
                  if t.worker and t.worker.startswith(victim.name + ":"))
    procs[victim.name].send_signal(signal.SIGKILL)
    procs[victim.name].wait(30)

    def all_finished() -> bool:
        return all(t.status.is_finished() for t in store.list_trials(sid, include_baseline=False))

    _wait("every trial to finish", all_finished, 150)
    rows = store.list_trials(sid, include_baseline=False)
    statuses = sorted(t.status.value for t in rows)
    assert statuses == ["discard"] * 6 + ["keep"], [t.failure for t in rows]
    again = store.get_trial(sid, killed.exp_id)
    assert again.attempts == 2 and "re-queued" in again.notes and "stopped heartbeating" in again.notes
    assert not again.worker.startswith(victim.name + ":")
    assert {t.exp_id for t in rows if t.attempts != 1} == {killed.exp_id}
    hosts_used = {t.worker.split(":")[0] for t in rows}
    assert hosts_used <= {h.name for h in hosts.hosts} and len(hosts_used) >= 2
    assert local.store.list_trials(local.search_id, include_baseline=False)[0].status == TrialStatus.QUEUED

    for name, proc in procs.items():  # SIGTERM: idle workers stop at once
        if name != victim.name:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        if name != victim.name:
            assert proc.wait(60) == 0, (Path(hosts.tmp) / name / "worker.err").read_text()[-2000:]
    reports = [r for h in hosts.hosts for r in _finished_lines(h.root / "worker.out")]
    assert sorted(r["exp_id"] for r in reports) == [t.exp_id for t in rows]  # each finished once
    assert killed.exp_id not in [r["exp_id"] for r in _finished_lines(victim.root / "worker.out")]
    sd.close()
    local.close()
