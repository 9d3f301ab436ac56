"""A real single-node SLURM cluster for the session (see `tests/slurm/cluster.py`), or skip.

Without the Debian packages (or without root, which the daemons need) the tests skip with the
reason, unless `AR_REQUIRE_SLURM=1`, where they fail. The cluster lives in a temp dir and its
daemons are stopped by PID at the end of the session; clients find it through `SLURM_CONF`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm import cluster


def _unavailable() -> str | None:
    gone = cluster.missing()
    if gone:
        return f"SLURM is not installed ({', '.join(gone)}): apt-get install {cluster.PACKAGES}"
    if os.geteuid() != 0:
        return "the single-node SLURM cluster needs root (munge, MariaDB and slurmd start as root)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[cluster.Cluster]:
    """Start slurmctld, slurmd, slurmdbd (MariaDB) and munged, with 4 fake GPUs; stop them after."""
    reason = _unavailable()
    if reason:
        if os.environ.get("AR_REQUIRE_SLURM") == "1":
            pytest.fail(f"AR_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    # the daemons' users (munge, mysql) must traverse every dir above it: a private TMPDIR will not do
    tmp = Path(tempfile.gettempdir())
    base = tmp if all(os.stat(p).st_mode & 0o001 for p in (tmp, *tmp.parents)) else Path("/tmp")
    root = Path(tempfile.mkdtemp(prefix="ar-slurm-", dir=base))
    before = os.environ.get("SLURM_CONF")
    try:
        c = cluster.start(root, ngpus=4)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    os.environ["SLURM_CONF"] = str(c.conf)
    try:
        yield c
    finally:
        c.stop()
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        shutil.rmtree(root, ignore_errors=True)
