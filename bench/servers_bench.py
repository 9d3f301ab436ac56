"""Latency of read tools: in memory (fastmcp Client on the server object) and over HTTP on loopback.

usage: python bench/servers_bench.py [--calls 500] [--trials 200] [--waiters 48] [--json]

Builds a throwaway digits-speedrun search (baseline given, no calibration) with `--trials`
queued rows, then times `blackboard_get_leaderboard` and `blackboard_get_trial` round trips
from a client: in memory, and against `autoresearch serve --transport http` on 127.0.0.1
(bearer token, workers off). Reports p50/p90 in milliseconds.

`--waiters N` adds the contended case: N other HTTP clients each keep a `wait_trial` call
open on a queued trial (nothing runs them) while one client times `blackboard_get_trial`
again ("http+waiters"); each server process's CPU seconds per wall second while only the
waiters wait is reported as "server_cpu".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastmcp import Client

from servers.auth import load_tokens
from servers.app.runtime import SearchRuntime
from servers.app.init import Baseline, init_search
from servers.suite import build_suite

TOOLS = [("blackboard_get_leaderboard", {}), ("blackboard_get_trial", {"exp_id": 0})]
REPO = Path(__file__).resolve().parents[1]


async def time_calls(client: Client, name: str, args: dict, calls: int) -> dict[str, float]:
    for _ in range(min(50, calls)):
        await client.call_tool(name, args)
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await client.call_tool(name, args)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p90_ms": round(samples[int(0.9 * len(samples))], 2)}


async def fill(rt: SearchRuntime, trials: int) -> None:
    async with Client(build_suite(rt, "opt", servers=("submission",))) as c:
        for i in range(trials):
            await c.call_tool("submission_submit_trial", {"hypothesis": f"bench {i}", "expected_delta": -0.01})


def start_http(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from client.cli import app; app()", "serve", "--state", str(state),
           "--transport", "http", "--port", str(port), "--no-workers"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/mcp"
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("the HTTP server did not start")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def with_waiters(url: str, tokens: dict[str, str], waiters: int, calls: int,
                       pid: int) -> dict[str, dict[str, float]]:
    """Time get_trial from one client while `waiters` clients keep wait_trial open on queued trials."""
    names = sorted(tokens)
    stop = asyncio.Event()
    started = 0

    async def wait_forever(i: int, client: Client) -> None:
        nonlocal started
        exp = 1 + i
        started += 1
        while not stop.is_set():
            await client.call_tool("submission_wait_trial", {"exp_id": exp, "timeout_s": 50})

    clients = [Client(url, auth=tokens[names[i % len(names)]]) for i in range(waiters)]
    for c in clients:
        await c.__aenter__()
    tasks = [asyncio.create_task(wait_forever(i, c)) for i, c in enumerate(clients)]
    try:
        while started < waiters:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(3.0)
        idle = {"cpu_per_s": round((cpu_seconds(pid) - cpu0) / (time.monotonic() - t0), 3)}
        async with Client(url, auth=tokens[names[0]]) as reader:
            read = await time_calls(reader, "blackboard_get_trial", {"exp_id": 0}, calls)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            try:
                await c.__aexit__(None, None, None)
            except Exception:  # noqa: BLE001 - a cancelled session may fail to close cleanly
                pass
    return {"blackboard_get_trial": read, "server_cpu": idle}


async def main(calls: int, trials: int, waiters: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {"memory": {}, "http": {}}
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as tmp:
        state = Path(tmp) / "state"
        init_search("digits-speedrun", state, baseline=Baseline(score=2.0, spread=0.05, n=3))
        rt = SearchRuntime.open(state, workers=0)
        try:
            await fill(rt, trials)
            async with Client(build_suite(rt, "opt")) as c:
                for name, args in TOOLS:
                    results["memory"][name] = await time_calls(c, name, args, calls)
        finally:
            rt.close()
        proc, url = start_http(state)
        try:
            async with Client(url, auth=load_tokens(state)["opt"]) as c:
                for name, args in TOOLS:
                    results["http"][name] = await time_calls(c, name, args, calls)
            if waiters:
                results["http+waiters"] = await with_waiters(url, load_tokens(state), min(waiters, trials),
                                                             min(calls, 200), proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--waiters", type=int, default=0, help="also time reads while N wait_trial calls wait")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    out = asyncio.run(main(ns.calls, ns.trials, ns.waiters))
    if ns.json:
        print(json.dumps(out, indent=2))
    else:
        for where, tools in out.items():
            for name, r in tools.items():
                if "cpu_per_s" in r:
                    print(f"{where:13s}  {name:28s}  {r['cpu_per_s']:.3f} CPU s per s while only the waiters wait")
                else:
                    print(f"{where:13s}  {name:28s}  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms")
