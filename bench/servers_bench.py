"""Latency of read tools: in memory (fastmcp Client on the server object) and over HTTP on loopback.

usage: python bench/servers_bench.py [--calls 500] [--trials 200] [--json]

Builds a throwaway digits-speedrun search (baseline given, no calibration) with `--trials`
queued rows, then times `blackboard_get_leaderboard` and `blackboard_get_trial` round trips
from a client: in memory, and against `autoresearch serve --transport http` on 127.0.0.1
(bearer token, workers off). Reports p50/p90 in milliseconds.
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
from servers.runtime import SearchRuntime
from servers.search import Baseline, init_search
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


async def main(calls: int, trials: int) -> dict[str, dict[str, dict[str, float]]]:
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
        finally:
            proc.terminate()
            proc.wait(15)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    out = asyncio.run(main(ns.calls, ns.trials))
    if ns.json:
        print(json.dumps(out, indent=2))
    else:
        for where, tools in out.items():
            for name, r in tools.items():
                print(f"{where:6s}  {name:28s}  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms")
