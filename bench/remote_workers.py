"""Workers on other hosts: do remote workers keep their slots busy, and how fast do they pick up?

    sudo .venv/bin/python bench/remote_workers.py [--hosts 3] [--slots 2] [--trials 36] [--sleep 4]
                                                  [--pickups 20]

Three simulated hosts (tests/remote/hosts.py: each a network namespace that reaches only the
bench's PostgreSQL over a veth pair, its own hostname and slot locks) each run
`autoresearch worker --slots N` on one `workers` search. Trials are real sandboxed evaluations
of a recipe that sleeps; snapshots reach the workers through the database.

1. Idle: with the workers up and idle, all trials are queued at once. Idle fraction =
   slot-seconds with no trial claimed on them while some trial was queued and unclaimed /
   (slots x the time some trial was), from the rows' submit, claim and finish times. Target < 2 %.
   Also shown: the harness's time per trial beyond the recipe's own (claim -> finished minus
   the sandbox-timed train phase): materialising the snapshot, the sandbox, the scorer, recording.
2. Pickup: one trial at a time into an idle fleet (0.5-2 s apart, so workers are at their
   longest idle poll); latency = its claim time minus its submit time. Target p50 < 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lineage.models import NoiseMargin, SearchConfig, Trial, TrialStatus  # noqa: E402
from lineage.state import StateDir  # noqa: E402
from tests.remote import hosts as simulated  # noqa: E402
from tests.remote.sleeptask import recipe  # noqa: E402

TASK = "tests.remote.sleeptask:SLEEP"


def _t(d: datetime | None) -> float:
    assert d is not None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def _queue(sd: StateDir, work: Path, sleep_s: float, n: int, tag: str) -> list[int]:
    ids = []
    for i in range(n):
        tree = work / f"{tag}-{i}"
        tree.mkdir(parents=True)
        (tree / "recipe.py").write_text(recipe(sleep_s, tag=f"{tag} {i}"))
        ids.append(sd.store.create_trial(sd.search_id, specialist="opt", snapshot=sd.snapshots.put_tree(tree)).exp_id)
    return ids


def _wait_done(sd: StateDir, ids: list[int], timeout: float) -> list[Trial]:
    deadline = time.monotonic() + timeout
    while True:
        rows = sd.store.get_trials(sd.search_id, ids)
        if all(r.status.is_finished() for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {[(r.exp_id, r.status.value) for r in rows if not r.status.is_finished()]}")
        time.sleep(0.2)


def idle_fraction(rows: list[Trial], slots_per_host: int, hosts: int) -> tuple[float, float]:
    """(idle fraction, window s): slots with no claimed trial while some trial was still unclaimed."""
    submit = min(_t(r.created_at) for r in rows)
    last_claim = max(_t(r.started_at) for r in rows)
    step, idle, window, t = 0.005, 0.0, 0.0, submit
    spans = [(_t(r.started_at), _t(r.finished_at)) for r in rows]
    waits = [(_t(r.created_at), _t(r.started_at)) for r in rows]
    while t < last_claim:
        if any(a <= t < b for a, b in waits):  # some trial was queued, unclaimed
            busy = sum(1 for a, b in spans if a <= t < b)
            idle += max(0, slots_per_host * hosts - busy) * step
            window += step
        t += step
    return idle / (slots_per_host * hosts * window), window


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2, help="slots per host")
    ap.add_argument("--trials", type=int, default=36)
    ap.add_argument("--sleep", type=float, default=4.0, help="seconds each trial's recipe sleeps")
    ap.add_argument("--pickups", type=int, default=20)
    args = ap.parse_args()
    why = simulated.unavailable()
    if why:
        raise SystemExit(f"cannot simulate hosts here: {why}")
    with simulated.SimulatedHosts(args.hosts) as fleet:
        db = "bench_" + uuid.uuid4().hex[:8]
        fleet.create_database(db)
        config = SearchConfig(task=TASK, backend="workers", roster=("opt",), margin=NoiseMargin(abs_delta=1e9))
        sd = StateDir.create(fleet.tmp / "search", config, database_url=fleet.local_url(db))
        procs = [fleet.start_worker(h, db, "--slots", str(args.slots)) for h in fleet.hosts]
        warm = _queue(sd, fleet.tmp / "trees", 0.1, args.hosts * args.slots, "warm")  # data prepared, caches warm
        _wait_done(sd, warm, 180)
        time.sleep(2.0)  # idle: every slot thread at its longest poll

        ids = _queue(sd, fleet.tmp / "trees", args.sleep, args.trials, "load")
        rows = _wait_done(sd, ids, 60 + 3 * args.sleep * args.trials / (args.hosts * args.slots))
        bad = [(r.exp_id, r.status.value, r.failure) for r in rows if r.status not in (TrialStatus.KEEP, TrialStatus.DISCARD)]
        frac, window = idle_fraction(rows, args.slots, args.hosts)
        overhead = [_t(r.finished_at) - _t(r.started_at) - r.timings.get("train", 0.0) for r in rows]
        per_host = {h.name: sum(1 for r in rows if (r.worker or "").startswith(h.name + ":")) for h in fleet.hosts}

        lat = []
        for i in range(args.pickups):
            time.sleep(random.uniform(0.5, 2.0))
            (exp,) = _queue(sd, fleet.tmp / "trees", 0.1, 1, f"pick{i}")
            (row,) = _wait_done(sd, [exp], 60)
            lat.append(_t(row.started_at) - _t(row.created_at))
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        sd.close()

    print(f"hosts {args.hosts} x {args.slots} slots, {args.trials} trials sleeping {args.sleep:g} s each")
    print(f"  trials per host: {per_host}; not kept/discarded: {bad or 'none'}")
    print(f"  slot idle while work was queued: {100 * frac:.2f} % of {args.hosts * args.slots} slots x "
          f"{window:.1f} s (target < 2 %)")
    print(f"  harness time per trial beyond the recipe: median {statistics.median(overhead):.2f} s, "
          f"max {max(overhead):.2f} s")
    lat.sort()
    print(f"  pickup of a queued trial by an idle fleet ({len(lat)} trials): p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms (target p50 < 1 s)")


if __name__ == "__main__":
    main()
