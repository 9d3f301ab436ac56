"""What a trial ran on: software versions, GPU model and driver, and GPU memory at its peak.

Every outcome carries these under `metrics["env"]`, so a row says which GPU, driver, torch
and CUDA produced its number (a timing is a fact about a machine as much as about a recipe).
GPU facts and memory come from `nvidia-smi`, queried by the evaluator from outside the
sandbox; on a machine without it they are absent, never guessed. Peak host memory (RSS) comes
from the sandbox's reaper.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import platform
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SAMPLE_S = 1.0


@functools.cache
def software() -> dict[str, Any]:
    """Python, torch and its CUDA version, and the CPU model of this host."""
    out: dict[str, Any] = {"python": platform.python_version(), "cpu": _cpu_model()}
    try:
        out["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return out
    spec = importlib.util.find_spec("torch")
    version_py = Path(spec.origin).parent / "version.py" if spec and spec.origin else None
    if version_py and version_py.is_file():  # read, not imported: importing torch costs seconds
        m = re.search(r"^cuda\s*(?::\s*\S+)?\s*=\s*['\"]([^'\"]+)['\"]", version_py.read_text(), re.M)
        out["cuda"] = m.group(1) if m else None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _smi(query: str, devices: Sequence[str]) -> list[list[str]]:
    """Rows of `nvidia-smi --query-gpu=<query>` for `devices` (empty without nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if exe is None or not devices:
        return []
    try:
        r = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", ",".join(devices)],
                           capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [[c.strip() for c in line.split(",")] for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []


def gpu_facts(devices: tuple[str, ...]) -> dict[str, Any]:
    """Model, driver and memory of the leased GPUs ({} when nvidia-smi cannot say).

    Asked per trial, not cached: a driver update between trials shows in the rows."""
    rows = _smi("name,driver_version,memory.total", devices)
    if not rows or any(len(r) < 3 for r in rows):
        return {}
    return {"gpus": len(rows), "gpu": " + ".join(sorted({r[0] for r in rows})), "driver": rows[0][1],
            "gpu_memory_mib": int(float(rows[0][2]))}


class GpuMemory:
    """Samples the used memory of some GPUs every `SAMPLE_S` while a run goes on; `peak_mib`."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = tuple(devices)
        self.peak_mib: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-memory", daemon=True)

    def __enter__(self) -> GpuMemory:
        if self.devices and shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        while True:
            used = [int(float(r[0])) for r in _smi("memory.used", self.devices) if r and r[0].replace(".", "").isdigit()]
            if used:
                self.peak_mib = max(self.peak_mib or 0, *used)
            if self._stop.wait(SAMPLE_S):
                return
