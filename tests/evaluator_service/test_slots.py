"""The slot pool with fake GPU ids: disjoint leases, whole-node waits, FIFO fairness."""

from __future__ import annotations

import threading
import time

import pytest

from evaluator_service.exceptions import SlotRequestError
from evaluator_service.slots import SlotPool, detect_devices

FAKE = [str(i) for i in range(8)]


def test_two_concurrent_half_node_leases_are_disjoint():
    pool = SlotPool(FAKE)
    a, b = pool.acquire(4), pool.acquire(4)
    assert a is not None and b is not None
    assert set(a.devices).isdisjoint(b.devices) and len(a.devices + b.devices) == 8
    assert pool.free() == 0


def test_full_node_request_waits_until_all_are_free():
    pool = SlotPool(FAKE)
    a, b = pool.acquire(4), pool.acquire(4)
    assert pool.acquire(8, timeout=0.1) is None
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(8)))
    t.start()
    pool.release(a)
    time.sleep(0.1)
    assert not got  # still waiting for the other half
    pool.release(b)
    t.join(2)
    assert got and sorted(got[0].devices) == FAKE


def test_fifo_head_is_not_starved_by_later_small_requests():
    pool = SlotPool(FAKE)
    held = pool.acquire(2)
    order: list[str] = []

    def take(name: str, k: int) -> None:
        lease = pool.acquire(k)
        order.append(name)
        time.sleep(0.05)
        pool.release(lease)

    big = threading.Thread(target=take, args=("big", 8))
    big.start()
    time.sleep(0.05)
    smalls = [threading.Thread(target=take, args=(f"small{i}", 1)) for i in range(3)]
    for t in smalls:
        t.start()
        time.sleep(0.02)
    time.sleep(0.1)
    assert order == []  # 6 slots free, but the 8-slot request is first in line
    pool.release(held)
    for t in (big, *smalls):
        t.join(2)
    assert order == ["big", "small0", "small1", "small2"]


def test_request_larger_than_the_pool_is_refused():
    with pytest.raises(SlotRequestError, match="asked for 9"):
        SlotPool(FAKE).acquire(9)


def test_cancelled_waiter_gives_up():
    pool = SlotPool(["0"])
    pool.acquire(1)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    assert pool.acquire(1, cancel=cancel) is None


def test_cpu_pool_when_no_gpu():
    pool = SlotPool([], cpu_slots=3, cpus=6)
    assert pool.kind == "cpu" and pool.size == 3
    lease = pool.acquire(1)
    assert lease.devices == () and lease.threads == 2


def test_devices_from_cuda_visible_devices():
    assert detect_devices("2,3") == ["2", "3"]
    assert detect_devices("") == []
    assert detect_devices("GPU-aa,GPU-bb") == ["GPU-aa", "GPU-bb"]


HOLD = """
import sys, time
from pathlib import Path
from evaluator_service.slots import SlotPool
pool = SlotPool(sys.argv[2].split(","), lock_dir=Path(sys.argv[1]))
lease = pool.acquire(1)
print("holding", lease.devices[0], flush=True)
time.sleep(float(sys.argv[3]))
pool.release(lease)
print("released", flush=True)
time.sleep(30)
"""


def hold_in_another_process(lock_dir, devices: str, seconds: float):  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_dir), devices, str(seconds)], cwd=repo,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("holding"), line
    return proc, line.split()[1]


@pytest.mark.timeout(30)
def test_pools_in_two_processes_never_lease_the_same_slot(tmp_path):
    """A serve process's evaluator job and the search's trial must not share a GPU or CPU slot."""
    proc, held = hold_in_another_process(tmp_path, "0", 1.5)
    try:
        pool = SlotPool(["0"], lock_dir=tmp_path)
        assert pool.acquire(1, timeout=0.3) is None  # the other process holds device 0
        t0 = time.monotonic()
        lease = pool.acquire(1, timeout=20)
        assert lease is not None and lease.devices == ("0",) and time.monotonic() - t0 > 0.5
        pool.release(lease)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(30)
def test_a_slot_held_elsewhere_is_skipped_for_a_free_one(tmp_path):
    proc, held = hold_in_another_process(tmp_path, "0,1", 20)
    try:
        pool = SlotPool(["0", "1"], lock_dir=tmp_path)
        lease = pool.acquire(1, timeout=2)
        assert lease is not None and lease.devices != (held,)
        assert pool.acquire(1, timeout=0.3) is None
    finally:
        proc.kill()
        proc.wait()
    again = pool.acquire(1, timeout=5)  # the holder died: its lock went with it
    assert again is not None and again.devices == (held,)


def test_pools_without_a_lock_dir_stay_private_and_detected_pools_are_host_wide():
    a, b = SlotPool(["0"]), SlotPool(["0"])
    assert a.acquire(1) is not None and b.acquire(1, timeout=0.1) is not None
    detected = SlotPool.detect("", cpu_slots=1)
    assert detected.lock_dir is not None  # real hardware: leases are host-wide
