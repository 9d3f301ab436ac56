"""The seeds of a main phase: one after another, or spread over the trial's GPUs.

A per-seed phase with `Phase.gpus_per_process = g` runs its seeds at once on a lease of n GPUs:
n // g processes per wave, each with its own g GPUs and its own slot (so its own sandbox uid),
each a cold process timed on its own. A wave finishes before the next starts, and its runs are
recorded in seed order. The first failure (by seed index) ends the trial; the wave's other
runs are stopped then, not left to finish. Anything else (no GPUs, one process's worth, or no
`gpus_per_process`) runs the seeds one after another with the whole lease.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

from evaluator_service import _phases
from evaluator_service._phases import Stopped, TrialContext
from evaluator_service.sandbox import PhaseRun
from evaluator_service.slots import Lease
from tasks.base import Phase


class _Either:
    """An event-like view that is set when either of two events is."""

    def __init__(self, a: threading.Event | None, b: threading.Event) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.b.is_set() or (self.a is not None and self.a.is_set())


def sub_leases(lease: Lease, per_process: int) -> list[Lease]:
    """The lease cut into leases of `per_process` GPUs, each with one of its slots."""
    n = len(lease.devices) // per_process
    threads = max(1, lease.threads // max(1, n))
    return [dataclasses.replace(lease, slots=(lease.slots[i % len(lease.slots)],),
                                devices=lease.devices[i * per_process:(i + 1) * per_process], threads=threads)
            for i in range(n)]


def run_seeds(ctx: TrialContext, phase: Phase, seeds: int, offset: int) -> None:
    """Run every seed of `phase` (or its single run), as the module docstring says."""
    indices = range(seeds) if phase.per_seed else range(1)
    parts = sub_leases(ctx.lease, phase.gpus_per_process) if phase.per_seed and phase.gpus_per_process else []
    if len(parts) <= 1:
        for i in indices:
            ctx.progress(f"{phase.name} seed {i + 1}/{len(indices)}" if phase.per_seed else phase.name)
            _phases.run_phase(ctx, phase, offset + i, i)
        return
    for start in range(0, seeds, len(parts)):
        wave = list(range(start, min(seeds, start + len(parts))))
        ctx.progress(f"{phase.name} seeds {wave[0] + 1}-{wave[-1] + 1}/{seeds} on {len(wave)} GPU slot(s)")
        _run_wave(ctx, phase, offset, wave, parts)


def _run_wave(ctx: TrialContext, phase: Phase, offset: int, wave: list[int], parts: list[Lease]) -> None:
    stop = threading.Event()
    cancel = _Either(ctx.cancel, stop)

    def one(k: int) -> tuple[PhaseRun | None, Stopped | None]:
        try:
            return _phases.run_phase(ctx, phase, offset + wave[k], wave[k], lease=parts[k],
                                     cancel=cancel, record=False), None
        except Stopped as e:
            if e.status != "cancelled" or not stop.is_set():
                stop.set()  # a real failure: the other seeds of the wave stop now
            return e.run, e

    with ThreadPoolExecutor(max_workers=len(wave), thread_name_prefix=f"seeds-{phase.name}") as pool:
        results = list(pool.map(one, range(len(wave))))
    for run, _ in results:
        if run is not None:
            ctx.record(phase.name, run)
    failures = [e for _, e in results if e is not None]
    real = [e for e in failures if e.status != "cancelled"] or failures
    if real:
        raise real[0]
