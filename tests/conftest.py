"""Shared fixtures: a real throwaway PostgreSQL server, a real single-node SLURM cluster, and the
path to the published run."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm import cluster

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO.parent / "shared" / "data" / "published-cifar-airbench96"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class _PgServer:
    """A PostgreSQL cluster in a temp dir, listening on a private unix socket only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="ar-pg-"))
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
            os.chmod(self.root, 0o755)

    def start(self) -> None:
        run = lambda cmd: subprocess.run(_as_pg_user(cmd), check=True, capture_output=True, timeout=120)  # noqa: E731
        run([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        opts = f"-c listen_addresses='' -k {self.sock} -c fsync=off -c max_connections=200"
        run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "60",
             "-l", str(self.root / "log"), "start"])

    def stop(self) -> None:
        subprocess.run(_as_pg_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@/{db}?host={self.sock}"


@pytest.fixture(scope="session")
def pg_base_url():
    """A PostgreSQL admin URL: AR_TEST_PG_URL, or a throwaway local server, or skip."""
    if os.environ.get("AR_TEST_PG_URL"):
        yield os.environ["AR_TEST_PG_URL"]
        return
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("AR_REQUIRE_PG"):
            pytest.fail("AR_REQUIRE_PG is set but no PostgreSQL server binaries were found")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql) and no AR_TEST_PG_URL")
    server = _PgServer(bindir)
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_base_url):
    """A fresh, empty PostgreSQL database for one test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    admin = pg_base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db_url = pg_base_url.replace("/postgres?", f"/{name}?") if "/postgres?" in pg_base_url else pg_base_url.rsplit("/", 1)[0] + "/" + name
    yield db_url
    for _ in range(3):
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            break
        except psycopg.OperationalError:
            time.sleep(0.2)


@pytest.fixture
def published_run() -> Path:
    if not (PUBLISHED / "results.tsv").exists():
        pytest.skip(f"the published run is not present at {PUBLISHED} (it ships beside the project, not in it)")
    return PUBLISHED


# ---------------------------------------------------------------- a single-node SLURM cluster
# Every test asking for `slurm_cluster` shares one real cluster for the session (tests/slurm/cluster.py);
# without the Debian packages or root the tests skip with the reason, unless AR_REQUIRE_SLURM=1,
# where they fail. Its daemons are stopped by PID at the end; clients find it through SLURM_CONF.
def _slurm_unavailable() -> str | None:
    gone = cluster.missing()
    if gone:
        return f"SLURM is not installed ({', '.join(gone)}): apt-get install {cluster.PACKAGES}"
    if os.geteuid() != 0:
        return "the single-node SLURM cluster needs root (munge, MariaDB and slurmd start as root)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[cluster.Cluster]:
    """Start slurmctld, slurmd, slurmdbd (MariaDB) and munged, with 4 fake GPUs; stop them after."""
    reason = _slurm_unavailable()
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
