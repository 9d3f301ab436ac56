"""Simulated hosts on one machine: each a network namespace that reaches only a PostgreSQL.

`SimulatedHosts(n)` (root only; `unavailable()` says why not) creates, for host k (1..n):
a network namespace `arw<tag>-k`, a veth pair `arh<tag>k` (this side, 10.X.k.1/30) and
`arn<tag>k` (in the namespace, 10.X.k.2/30; X drawn per instance, so two simulations at once
do not collide), and starts a PostgreSQL cluster (the test
suite's `_PgServer`) listening on each host side address only, trusting those subnets. A worker
runs inside its namespace under its own hostname (`unshare --uts`) and its own slot lock dir
(`AR_SLOT_LOCK_DIR`), so it is another host to the lineage: another name, no shared locks, the
database reached over the network. `close()` kills the workers it started and deletes the
namespaces and the cluster, by name and PID; it also runs when creating them fails.

Used by tests/remote/ and bench/remote_workers.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO, _as_pg_user, _pg_bin, _PgServer



def unavailable() -> str | None:
    """Why hosts cannot be simulated here (None: they can)."""
    if os.geteuid() != 0:
        return "simulated hosts need root (ip netns add, veth pairs)"
    for tool in ("ip", "unshare", "hostname"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _pg_bin() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql)"
    probe = f"arprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns is unavailable here: {made.stderr.strip()}"
    try:
        veth = ["ip", "-n", probe, "link", "add", "name", "arprobe0", "type", "veth", "peer", "name", "arprobe1"]
        for cmd, what in ((veth, "veth pairs"),
                          (["ip", "netns", "exec", probe, "unshare", "--uts", "--", "true"], "unshare --uts")):
            tried = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if tried.returncode != 0:
                return f"{what} unavailable here: {tried.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


class _ListeningPg(_PgServer):
    """The suite's throwaway cluster, also listening on TCP at `addresses` (trusting `subnet`.0.0/16)."""

    def __init__(self, bindir: Path, addresses: list[str], port: int, subnet: str) -> None:
        super().__init__(bindir)
        self.addresses, self.port, self.subnet = addresses, port, subnet

    def start(self) -> None:
        def run(cmd: list[str]) -> None:
            subprocess.run(_as_pg_user(cmd), check=True, capture_output=True, timeout=120)

        run([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.subnet}.0.0/16 trust\n")
        opts = (f"-c listen_addresses='{','.join(self.addresses)}' -p {self.port} -k {self.sock} "
                "-c fsync=off -c max_connections=300")
        run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "60",
             "-l", str(self.root / "log"), "start"])

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@/{db}?host={self.sock}&port={self.port}"


@dataclass
class Host:
    """One simulated host."""

    name: str
    netns: str
    address: str  # the database's address as this host sees it
    root: Path  # its private dirs: work dir, slot locks
    procs: list[subprocess.Popen] = field(default_factory=list)


class SimulatedHosts:
    """See the module docstring. Use as a context manager."""

    def __init__(self, n: int) -> None:
        self.tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ar-hosts-"))
        os.chmod(self.tmp, 0o755)
        self.hosts: list[Host] = []
        self.pg: _ListeningPg | None = None
        self.port = random.randrange(20000, 30000)
        self.subnet = f"10.{random.randrange(200, 250)}"
        try:
            for k in range(1, n + 1):
                self._add_host(k)
            bindir = _pg_bin()
            assert bindir is not None
            self.pg = _ListeningPg(bindir, [f"{self.subnet}.{k}.1" for k in range(1, n + 1)], self.port, self.subnet)
            self.pg.start()
        except BaseException:
            self.close()
            raise

    def _add_host(self, k: int) -> None:
        ns, here, there = f"arw{self.tag}-{k}", f"arh{self.tag}{k}", f"arn{self.tag}{k}"
        host = Host(name=f"host-{k}", netns=ns, address=f"{self.subnet}.{k}.1", root=self.tmp / f"host-{k}")
        self.hosts.append(host)  # before it exists: `close` deletes what was made
        for cmd in (["ip", "netns", "add", ns],
                    ["ip", "link", "add", "name", here, "type", "veth", "peer", "name", there],
                    ["ip", "link", "set", there, "netns", ns],
                    ["ip", "addr", "add", f"{self.subnet}.{k}.1/30", "dev", here],
                    ["ip", "link", "set", here, "up"],
                    ["ip", "-n", ns, "addr", "add", f"{self.subnet}.{k}.2/30", "dev", there],
                    ["ip", "-n", ns, "link", "set", there, "up"],
                    ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
        host.root.mkdir(parents=True)

    def create_database(self, name: str) -> None:
        import psycopg

        assert self.pg is not None
        with psycopg.connect(self.pg.url("postgres").replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")

    def local_url(self, db: str) -> str:
        """The database as this machine (the search's host) reaches it."""
        assert self.pg is not None
        return self.pg.url(db)

    def url_for(self, host: Host, db: str) -> str:
        """The database as `host` reaches it: over its veth pair."""
        return f"postgresql://postgres@{host.address}:{self.port}/{db}"

    def start_worker(self, host: Host, db: str, *args: str, stdout: Path | None = None) -> subprocess.Popen:
        """`autoresearch worker` on `host`, as that host: its namespace, hostname and slot locks."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AR_TEST_PG"))}
        env.update(AR_SLOT_LOCK_DIR=str(host.root / "slot-locks"), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        cmd = ["ip", "netns", "exec", host.netns, "unshare", "--uts", "--", "sh", "-c",
               'hostname "$0" && exec "$@"', host.name,
               sys.executable, "-m", "client.cli", "worker", "--database-url", self.url_for(host, db),
               "--work-dir", str(host.root / "work"), "--json", *args]
        out = open(stdout or host.root / "worker.out", "ab")
        err = open(host.root / "worker.err", "ab")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        host.procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill the workers started here, delete the namespaces and links, stop the cluster."""
        for host in self.hosts:
            for proc in host.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(30)
        for k, host in enumerate(self.hosts, start=1):
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", f"arh{self.tag}{k}"], capture_output=True, timeout=30)
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> SimulatedHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
