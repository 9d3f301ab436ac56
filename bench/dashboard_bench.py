"""Dashboard benchmark: the main page's data endpoint at 1,000 and 100,000 trials (SQLite file).

    python bench/dashboard_bench.py [--sizes 1000 100000] [--runs 40]

Targets: `GET /api/s/<key>/summary` answers in under 20 ms p50 at 1,000 trials and under 100 ms
p50 at 100,000, over real HTTP on loopback (the dashboard in its own process, one keep-alive client), with the
reader refreshing on every request (`min_interval=0`: the worst case; the served default
reuses a refresh for 0.5 s). The store is filled in bulk with a realistic mix (5 specialists,
~2% keeps forming the best's ancestry, failures of every kind, metrics and timings, a finish
time per trial over weeks, a session and a submit event per trial, 20 trials in flight).

Figures per size:
  first    the first request after start: the reader pages through the whole search once
  changed  a trial finished just before each request: refresh, rebuild, serialise (the live case)
  same     nothing changed: refresh finds nothing, the cached body is sent
  304      the client sends the version's ETag: refresh, then an empty 304
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2  # noqa: E402
from sqlalchemy import insert, update  # noqa: E402

from lineage._engine import run_tx  # noqa: E402
from lineage.live import LiveSearch  # noqa: E402
from lineage.models import Outcome, SearchConfig  # noqa: E402
from lineage.state import StateDir  # noqa: E402
from lineage.tables import EventRow, SearchRow, SessionRow, TrialRow  # noqa: E402
from servers.auth import viewer_token  # noqa: E402
from servers.dashboard import build_dashboard  # noqa: E402


@contextmanager
def serving(state: Path) -> Iterator[str]:
    """The dashboard of `state` in its own process (as `autoresearch dashboard` runs it), refreshing
    on every request; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(state), str(port)])
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def serve(state: Path, port: int) -> None:
    import uvicorn

    from servers.serve import run_loop

    app, _ = build_dashboard([state], min_interval=0)
    run_loop(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")).serve())


ROSTER = ("arch", "opt", "aug", "loss", "reg")
FAILED = ["disqualified"] * 25 + ["crash"] * 10 + ["preflight_crash"] * 8 + ["size_blocked"] * 5 + \
    ["train_budget_overrun"] * 2


def _rows(sid: str, n: int) -> tuple[list[dict[str, Any]], int, float]:
    rng, t0 = random.Random(7), datetime(2026, 1, 1, tzinfo=UTC)
    best_exp, best, keeps = 0, 30.0, [0]
    rows = [_row(sid, 0, "baseline", "baseline", None, best, t0)]
    for exp in range(1, n + 1):
        parent = keeps[-1] if rng.random() < 0.7 else rng.choice(keeps[-10:])
        when = t0 + timedelta(seconds=exp * 25 + rng.random() * 10)
        if rng.random() < 0.02:
            best, best_exp = best - rng.random() * 0.01, exp
            keeps.append(exp)
            rows.append(_row(sid, exp, ROSTER[exp % 5], "keep", parent, best, when))
            continue
        status = "discard" if rng.random() < 0.45 else rng.choice(FAILED)
        rows.append(_row(sid, exp, ROSTER[exp % 5], status, parent, best + rng.random() if status == "discard" else None, when))
    return rows, best_exp, best


def _row(sid: str, exp: int, spec: str, status: str, parent: int | None, score: float | None, when: datetime) -> dict[str, Any]:
    return {
        "search_id": sid, "exp_id": exp, "specialist": spec, "status": status, "parent_exp": parent,
        "hypothesis": f"exp {exp}: change the warmup to {exp % 17}% and widen block {exp % 3} " * 2,
        "notes": "measured and compared with the parent. " * 3, "score": score, "delta": None, "decision": "",
        "metrics": {"train_s": score, "accuracy": 0.96, "env": {"torch": "2.13.0", "gpu": "H200"}},
        "timings": {"train": 20.0, "train_cpu": 19.0, "total": 25.0}, "extra": {},
        "failure": "" if score is not None else "RuntimeError: shapes do not match", "created_at": when,
        "started_at": when, "finished_at": when + timedelta(seconds=8), "attempts": 1, "gpus": 1,
        "self_reported": False, "unisolated": False, "worker": "w1",
    }


def fill(root: Path, n: int) -> StateDir:
    """A search of `n` finished trials, 20 in flight, a session and an event per trial."""
    sd = StateDir.create(root / f"s{n}", SearchConfig(task="bench", roster=ROSTER, score_field="train_s"))
    sid = sd.search_id
    rows, best_exp, best = _rows(sid, n)
    sessions = [{"search_id": sid, "specialist": r["specialist"], "model": "m", "started_at": r["created_at"],
                 "ended_at": r["finished_at"], "cost_usd": 0.05, "tool_calls": 12, "exp_id": r["exp_id"],
                 "stop_reason": "end_turn", "error": ""} for r in rows[1:]]
    events = [{"search_id": sid, "ts": r["created_at"], "kind": "submit", "specialist": r["specialist"],
               "exp_id": r["exp_id"], "payload": {"snapshot": "x"}} for r in rows[1:]]
    for table, data in ((TrialRow, rows), (SessionRow, sessions), (EventRow, events)):
        for i in range(0, len(data), 20_000):
            run_tx(sd.store.engine, lambda s, c=data[i:i + 20_000], t=table: s.connection().execute(insert(t.__table__), c),
                   write=True)
    run_tx(sd.store.engine, lambda s: s.exec(update(SearchRow).where(SearchRow.id == sid).values(
        best_exp_id=best_exp, best_score=best, baseline_score=30.0, baseline_spread=0.05, baseline_n=5,
        next_exp_id=n + 1)), write=True)
    for i in range(20):
        t = sd.store.create_trial(sid, specialist=ROSTER[i % 5], parent_exp=best_exp, hypothesis="in flight")
        if i < 5:
            sd.store.claim_trial(sid, f"w{i}", exp_id=t.exp_id)
    return sd


def _p(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    return f"p50 {statistics.median(samples) * 1000:7.2f} ms  p90 {q[8] * 1000:7.2f} ms"


def bench(root: Path, n: int, runs: int) -> dict[str, str]:
    t = time.perf_counter()
    sd = fill(root, n)
    filled = time.perf_counter() - t
    out: dict[str, str] = {"fill": f"{filled:.1f} s"}
    url = f"/api/s/{sd.search_id}/summary"
    pending = [p.exp_id for p in LiveSearch(sd.store, sd.search_id).state().pending]
    with serving(sd.path) as base, httpx2.Client(base_url=base, headers={"authorization": f"Bearer {viewer_token(sd.path)}"}) as c:
        t = time.perf_counter()
        first = c.get(url)
        out["first"] = f"{(time.perf_counter() - t) * 1000:.0f} ms ({len(first.content) // 1024} KB)"
        changed, same, not_modified, server = [], [], [], []
        for i in range(runs):
            exp = pending[i % len(pending)] if i < len(pending) else None
            if exp is None:  # more runs than trials in flight: queue one more, finish it
                exp = sd.store.create_trial(sd.search_id, specialist="opt", parent_exp=0).exp_id
            sd.store.claim_trial(sd.search_id, "bench", exp_id=exp)
            sd.store.finish_trial(sd.search_id, exp, Outcome(status="valid", score=31.0 + i / 100))
            t = time.perf_counter()
            r = c.get(url)
            changed.append(time.perf_counter() - t)
            assert r.status_code == 200
            server.append(float(r.headers["server-timing"].split("dur=")[1]) / 1000)
        for _ in range(runs):
            t = time.perf_counter()
            r = c.get(url)
            same.append(time.perf_counter() - t)
        etag = r.headers["etag"]
        for _ in range(runs):
            t = time.perf_counter()
            assert c.get(url, headers={"if-none-match": etag}).status_code == 304
            not_modified.append(time.perf_counter() - t)
    sd.close()
    out.update({"changed": _p(changed) + f"   (server's own time p50 {statistics.median(server) * 1000:.2f} ms)",
                "same": _p(same), "304": _p(not_modified)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--serve", nargs=2, metavar=("STATE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return
    root = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    try:
        for n in args.sizes:
            fig = bench(root, n, args.runs)
            print(f"{n:>7} trials: store filled in {fig['fill']}; first request {fig['first']}", flush=True)
            for k in ("changed", "same", "304"):
                print(f"         summary, {k:>7}: {fig[k]}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
