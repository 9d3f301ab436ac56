"""Sandboxes left stuck in setup by a killed evaluator are swept when a sandbox is next made.

bubblewrap's child blocks on its parent during setup; if the parent dies then (the evaluator's
process killed with SIGKILL as a sandbox starts), the child waits forever, holding the
sandbox's seccomp program (bubblewrap issue #633; the test suite once leaked such processes).
Here the stuck state is made for real: a bwrap holding the seccomp memfd is held in setup by
`--block-fd`, and its parent bwrap is killed. A sandbox whose parent lives is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from evaluator_service import _seccomp
from evaluator_service._proc import stuck_sandbox_setups
from tests.evaluator_service.conftest import make_sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None,
                                reason="needs root and bubblewrap, as the sandbox does")


AGE_S = 2.0  # older than any bwrap still starting (a sandbox starting meanwhile elsewhere is never touched)


def _blocked_bwrap() -> tuple[subprocess.Popen, int, int]:  # type: ignore[type-arg]
    """A bwrap whose child holds the seccomp program and waits on a pipe nobody writes:
    (the parent bwrap, the child's pid, the pipe's write end)."""
    read, write = os.pipe()
    seccomp = _seccomp.program_fd()
    try:
        parent = subprocess.Popen(["bwrap", "--unshare-pid", "--seccomp", str(seccomp), "--block-fd", str(read),
                                   "--ro-bind", "/", "/", "--", "true"], pass_fds=(seccomp, read),
                                  start_new_session=True)
    finally:
        os.close(seccomp)
        os.close(read)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = [int(p) for p in open(f"/proc/{parent.pid}/task/{parent.pid}/children").read().split()]
        if children and any(os.readlink(f"/proc/{children[0]}/fd/{fd}").startswith(f"/memfd:{_seccomp.MEMFD_NAME}")
                            for fd in os.listdir(f"/proc/{children[0]}/fd")):
            return parent, children[0], write
        time.sleep(0.05)
    raise AssertionError("bwrap's child never reached its setup wait")


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(60)
def test_a_setup_orphaned_by_its_dead_parent_is_killed_and_a_live_one_is_left(tmp_path):
    parent, stuck, w1 = _blocked_bwrap()
    healthy_parent, healthy, w2 = _blocked_bwrap()
    try:
        parent.send_signal(signal.SIGKILL)  # the evaluator side dies mid-setup
        parent.wait(10)
        assert not _gone(stuck, within=AGE_S + 0.5)  # nothing else ends it: it would wait forever
        assert stuck in stuck_sandbox_setups(_seccomp.MEMFD_NAME, min_age_s=AGE_S)
        assert healthy not in stuck_sandbox_setups(_seccomp.MEMFD_NAME, min_age_s=AGE_S)  # its parent lives
        assert stuck not in stuck_sandbox_setups(_seccomp.MEMFD_NAME, min_age_s=3600)  # a young one may be starting

        sandbox = make_sandbox(tmp_path)  # a new evaluator's sandbox sweeps what is older than a minute...
        try:
            assert sandbox.sweep_stuck_setups(min_age_s=AGE_S) >= 1  # ... here, older than AGE_S
        finally:
            sandbox.close()
        assert _gone(stuck)
        assert not _gone(healthy, within=0.5) and healthy_parent.poll() is None
    finally:
        for pid in (stuck, healthy):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        healthy_parent.kill()
        healthy_parent.wait(10)
        os.close(w1)
        os.close(w2)
