"""Shared fixtures: a real throwaway PostgreSQL server, and the path to the published run."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

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
