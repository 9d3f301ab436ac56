"""Lineage benchmarks: the three figures the lineage must meet on one small machine (SQLite).

    python bench/lineage_bench.py [--trials 100000] [--runs 50] [--published ../shared/data/...]

1. Recording a trial with a fresh 80 KB snapshot (`put_tree` of a workspace whose file changed,
   then `create_trial`): p50 target < 5 ms.
2. Rendering a specialist's lineage view with 100,000 trials in the store: p50 target < 50 ms.
   The store is filled with one bulk `executemany` (a realistic mix: 5 specialists, ~2% keeps
   forming the best's ancestry, parents on recent keeps, 150-300 character texts).
3. Importing a 1,000-row published run (rows of the published CIFAR run repeated with new ids,
   or an exported synthetic search when it is absent): target < 2 s, timed from the release
   directory to a ready state directory (database created, rows inserted).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update

from lineage._engine import run_tx
from lineage.models import SearchConfig
from lineage.release import export_search, import_release
from lineage.render import render_view
from lineage.state import StateDir
from lineage.tables import SearchRow, TrialRow

ROSTER = ("arch", "opt", "aug", "loss", "reg")
STATUSES = ["discard"] * 40 + ["disqualified"] * 25 + ["crash"] * 10 + ["preflight_crash"] * 8 + ["size_blocked"] * 5


def _pct(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=10)
    return f"p50 {statistics.median(samples) * 1000:.2f} ms, p90 {qs[8] * 1000:.2f} ms (n={len(samples)})"


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_record(root: Path, runs: int) -> str:
    state = StateDir.create(root / "record", SearchConfig(task="bench", roster=ROSTER))
    work = root / "workspace"
    work.mkdir()
    (work / "README.md").write_text("unchanged helper file\n" * 20)
    rng = random.Random(1)
    samples = []
    for i in range(runs + 5):
        body = "".join(f"x_{i}_{j} = {rng.random()!r}  # line of a recipe\n" for j in range(1800))[:80_000]
        (work / "train.py").write_text(body)
        t = time.perf_counter()
        snap = state.snapshots.put_tree(work)
        state.store.create_trial(state.search_id, specialist="opt", hypothesis=f"try {i}", parent_exp=0,
                                 snapshot=snap)
        if i >= 5:  # warm-up excluded
            samples.append(time.perf_counter() - t)
    state.close()
    return _pct(samples)


def _rows(search_id: str, n: int) -> tuple[list[dict[str, object]], int, float]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    best_exp, best, keeps = 0, 30.0, [0]
    rows: list[dict[str, object]] = [_row(search_id, 0, "baseline", "baseline", None, best, None, now)]
    for exp in range(1, n + 1):
        spec = ROSTER[exp % len(ROSTER)]
        parent = keeps[-1] if rng.random() < 0.7 else rng.choice(keeps[-10:])
        if rng.random() < 0.02:
            score = best - rng.random() * 0.01
            rows.append(_row(search_id, exp, spec, "keep", parent, score, score - best, now))
            best_exp, best = exp, score
            keeps.append(exp)
            continue
        status = rng.choice(STATUSES)
        score = best + rng.random() if status == "discard" else None
        rows.append(_row(search_id, exp, spec, status, parent, score, None if score is None else score - best, now))
    return rows, best_exp, best


def _row(sid: str, exp: int, spec: str, status: str, parent: int | None, score: float | None,
         delta: float | None, now: datetime) -> dict[str, object]:
    return {
        "search_id": sid, "exp_id": exp, "specialist": spec, "status": status, "parent_exp": parent,
        "hypothesis": f"exp {exp}: change the learning-rate schedule warmup to {exp % 17}% and widen block {exp % 3} " * 2,
        "notes": f"note for {exp}: " + "measured, compared with the parent, and summarised here. " * 3,
        "score": score, "delta": delta, "margin": 0.001 if score is not None else None, "decision": "",
        "metrics": {}, "timings": {}, "extra": {}, "failure": "" if score is not None else "gate missed",
        "created_at": now, "finished_at": now, "attempts": 1, "gpus": 0, "self_reported": False, "unisolated": False,
    }


def bench_view(root: Path, n: int, runs: int) -> str:
    state = StateDir.create(root / "view", SearchConfig(task="bench", roster=ROSTER))
    sid = state.search_id
    fill = _fill(state, n)
    size = len(render_view(state.store, sid, "opt"))
    samples = _timed(lambda: render_view(state.store, sid, "opt"), runs)
    state.close()
    return f"{_pct(samples)}; store of {n} trials filled in {fill:.1f} s; view {size} chars"


def _published_release(root: Path, published: Path | None, n: int) -> Path:
    out = root / "release"
    out.mkdir()
    src = published / "results.tsv" if published else None
    if src is None or not src.is_file():
        return _synthetic_release(root, n)
    lines = src.read_text(encoding="utf-8").splitlines()
    header, body = lines[0], [x.split("\t") for x in lines[2:]]
    rows = [lines[1]]
    for exp in range(1, n + 1):
        fields = list(body[(exp - 1) % len(body)])
        fields[0], fields[3] = f"{exp:04d}", f"{max(0, exp - 1 - (exp % 7)):04d}"
        rows.append("\t".join(fields))
    (out / "results.tsv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (out / "best.json").write_text((published / "best.json").read_text())  # type: ignore[operator]
    best = json.loads((out / "best.json").read_text())
    best["exp_id"] = "0070"
    (out / "best.json").write_text(json.dumps(best))
    return out


def _fill(state: StateDir, n: int) -> float:
    """Bulk-insert `n` synthetic trials (plus the baseline); returns the seconds it took."""
    sid = state.search_id
    rows, best_exp, best = _rows(sid, n)
    t = time.perf_counter()
    for i in range(0, len(rows), 20_000):
        chunk = rows[i:i + 20_000]
        run_tx(state.store.engine, lambda s, c=chunk: s.connection().execute(insert(TrialRow.__table__), c), write=True)
    run_tx(state.store.engine, lambda s: s.exec(update(SearchRow).where(SearchRow.id == sid).values(
        best_exp_id=best_exp, best_score=best, baseline_score=30.0, baseline_n=1, next_exp_id=n + 1)), write=True)
    return time.perf_counter() - t


def _synthetic_release(root: Path, n: int) -> Path:
    """Without the published run: a synthetic search of `n` trials, exported."""
    state = StateDir.create(root / "synthetic", SearchConfig(task="bench", roster=ROSTER))
    _fill(state, n)
    export_search(state, root / "release")
    state.close()
    return root / "release"


def bench_import(root: Path, published: Path | None, n: int, runs: int) -> str:
    release = _published_release(root, published, n)
    samples = []
    for i in range(runs):
        target = root / f"imported-{i}"
        t = time.perf_counter()
        report = import_release(release, target)
        samples.append(time.perf_counter() - t)
        assert report.rows_imported == n + 1, report.rows_imported
    return f"{_pct(samples)} for {n} rows (+ baseline)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--published", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/published-cifar-airbench96")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lineage-bench-"))
    try:
        print(f"record a trial with a fresh 80 KB snapshot: {bench_record(root, args.runs)}", flush=True)
        print(f"lineage view with {args.trials} trials: {bench_view(root, args.trials, args.runs)}", flush=True)
        print(f"import a 1,000-row published run: {bench_import(root, args.published, 1000, 5)}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
