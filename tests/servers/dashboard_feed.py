"""Real searches for the dashboard tests, and trials written into them with the store's own API.

`make_search` creates a digits-speedrun search (its recipe snapshotted as the baseline, with
calibration runs recorded); `record` writes one trial the way the submission pipeline and a
worker do: a snapshot of the parent's files with one tunable changed, a queued row, a claim,
and an outcome with metrics (env included), timings per phase, or a failure.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lineage.models import Outcome, Trial
from lineage.state import StateDir
from servers.app.init import Baseline, init_search

TASK = "digits-speedrun"
RUNS = [2.02, 1.97, 2.05, 1.99, 1.97]  # calibration scores: mean 2.0


def make_search(path: Path, **kwargs: Any) -> StateDir:
    kwargs.setdefault("confirm_runs", 0)  # candidate keeps decided at once (confirmation has its own tests)
    init_search(TASK, path, baseline=Baseline(score=2.0, spread=0.035, n=5), **kwargs)
    sd = StateDir.open(path)
    base = sd.store.get_trial(sd.search_id, 0)
    sd.store.set_baseline(sd.search_id, 2.0, 0.035, 5, snapshot=base.snapshot, metrics={"scores": RUNS, "runs": 5})
    return sd


def files_of(sd: StateDir, exp: int) -> dict[str, bytes]:
    t = sd.store.get_trial(sd.search_id, exp)
    assert t.snapshot, f"exp {exp} has no snapshot"
    return {e.path: sd.snapshots.read_file(t.snapshot, e.path) for e in sd.snapshots.list_files(t.snapshot)}


def with_tunable(files: dict[str, bytes], name: str, value: str) -> dict[str, bytes]:
    text = files["train.py"].decode()
    changed = re.sub(rf"^{name} = [^ ]+", f"{name} = {value}", text, count=1, flags=re.M)
    assert changed != text, f"{name} not found or unchanged"
    return {**files, "train.py": changed.encode()}


def record(sd: StateDir, specialist: str, name: str, value: str, *, parent: int = 0, score: float | None = None,
           status: str = "valid", hypothesis: str | None = None, finish: bool = True) -> Trial:
    """One trial from `parent` with tunable `name` set to `value`; finished unless `finish=False`."""
    digest = sd.snapshots.put_files(with_tunable(files_of(sd, parent), name, value))
    t = sd.store.create_trial(sd.search_id, specialist=specialist, parent_exp=parent, snapshot=digest,
                              hypothesis=hypothesis or f"set {name} to {value}", expected_delta=-0.05, seeds=3)
    if not finish:
        return t
    claimed = sd.store.claim_trial(sd.search_id, f"test-worker:{specialist}", exp_id=t.exp_id)
    assert claimed is not None
    metrics: dict[str, Any] = {"train_s": score, "train_s_per_seed": [score * 0.99, score, score * 1.01] if score else [],
                               "accuracy": 0.97, "env": {"torch": "2.13.0", "gpu": [{"name": "NVIDIA H200", "memory_peak_mib": 2048}],
                                                         "peak_rss_mib": 512.5}}
    timings = {"smoke": 0.8, "train": 3.1, "train_cpu": 2.9, "score": 0.4, "total": 4.6}
    failure = "" if status == "valid" else "Traceback (most recent call last): RuntimeError: shapes do not match"
    return sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status=status, score=score, metrics=metrics,
                                 timings=timings, failure=failure))


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
