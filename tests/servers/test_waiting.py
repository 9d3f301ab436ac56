"""wait_trial wakes on its trial's change instead of each waiter polling the database (issue 8, item 10).

Queries are counted on the real engine (SQLAlchemy's cursor event), so the test measures work,
not time; the latency figures are in bench/servers_bench.py --waiters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event

from lineage.models import Outcome
from lineage.state import StateDir
from servers.app.runtime import SearchRuntime
from tests.servers.conftest import make_search


@contextmanager
def statements(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def submit(client, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        res = await client.call_tool("submission_submit_trial", {"hypothesis": f"wait {i}.", "expected_delta": -0.1})
        out.append(res.structured_content["exp_id"])
    return out


@pytest.mark.timeout(30)
async def test_many_waiters_share_one_query_per_tick(rt: SearchRuntime, connect) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        exps = await submit(c, 12)
        with statements(rt.store.engine) as seen:
            results = await asyncio.gather(*(
                c.call_tool("submission_wait_trial", {"exp_id": e, "timeout_s": 2}) for e in exps))
    assert [(r.structured_content["status"], r.structured_content["settled"]) for r in results] == [("queued", False)] * 12
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    # polling every 0.1 s: 12 waiters x 20 polls x 2 queries, about 480; a shared watch: reads at the
    # start and end of each wait plus one status query per tick
    assert len(selects) < 100, len(selects)


@pytest.mark.timeout(30)
async def test_a_waiter_wakes_when_another_connection_finishes_its_trial(
    rt: SearchRuntime, search: Path, connect,  # type: ignore[no-untyped-def]
) -> None:
    other = StateDir.open(search)  # a second engine, as another process would have

    def finish(exp: int) -> None:
        other.store.claim_trial(other.search_id, "elsewhere", exp_id=exp)
        other.store.finish_trial(other.search_id, exp, Outcome(status="crash", failure="finished elsewhere"))

    result: list[dict] = []
    try:
        async with connect("opt") as c:
            (exp,) = await submit(c, 1)

            async def wait() -> None:
                res = await c.call_tool("submission_wait_trial", {"exp_id": exp, "timeout_s": 30})
                result.append(res.structured_content)

            t0 = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.5)
                await anyio.to_thread.run_sync(finish, exp)
    finally:
        other.close()
    assert result[0]["status"] == "crash" and "finished elsewhere" in result[0]["failure"]
    assert time.monotonic() - t0 < 5  # woken by the change, not by the 30 s timeout


@pytest.mark.timeout(30)
async def test_a_candidate_under_confirmation_ends_the_wait(tmp_path: Path, connect) -> None:  # type: ignore[no-untyped-def]
    """Scored and beating the best by more than the margin, a trial is `confirming` while its
    paired re-runs run (minutes on digits): the specialist hears so at once and may move on,
    rather than waiting out the re-runs in 50 s calls while other roles take the budget."""
    runtime = SearchRuntime.open(make_search(tmp_path / "confirmed", confirm_runs=4), workers=0)
    try:
        async with connect("opt", runtime=runtime) as c:
            (exp,) = await submit(c, 1)
            runtime.store.claim_trial(runtime.search_id, "test", exp_id=exp)
            assert runtime.store.finish_trial(runtime.search_id, exp, Outcome(status="valid", score=1.0)).status.value \
                == "confirming"  # the baseline is 2.0 with a margin of one spread, 0.05
            t0 = time.monotonic()
            res = await c.call_tool("submission_wait_trial", {"exp_id": exp, "timeout_s": 30})
    finally:
        runtime.close()
    got = res.structured_content
    assert (got["status"], got["finished"], got["settled"], got["score"]) == ("confirming", False, True, 1.0)
    assert time.monotonic() - t0 < 5
