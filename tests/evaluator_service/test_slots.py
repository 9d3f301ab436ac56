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
