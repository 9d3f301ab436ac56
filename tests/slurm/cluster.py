"""A real single-node SLURM cluster for tests and benches, started and stopped by PID.

`start(root)` brings up, all under `root` (config, state, logs, sockets, fake GPU nodes):
munged with its own key, MariaDB (its own datadir, TCP on a free port) for slurmdbd,
slurmdbd, slurmctld and slurmd, with `ngpus` fake GPUs as gres (char devices aliasing
/dev/null, as in /work/shared/reference/single-node-slurm-example.sh). It returns once `sinfo`
shows the node idle. Clients find the cluster through `SLURM_CONF` (`Cluster.env`).
`Cluster.stop()` cancels the cluster's jobs and stops exactly the daemons it started, by PID.

`missing()` names what is not installed (the Debian packages slurmctld, slurmd, slurmdbd,
munge, mariadb-server). Everything runs in the foreground under `subprocess.Popen`, so each
daemon's PID is the Popen's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = "slurmctld slurmd slurmdbd munge mariadb-server"
BINARIES = {
    "munged": "munge", "mungekey": "munge", "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server", "mariadb": "mariadb-server", "slurmdbd": "slurmdbd",
    "slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "sacct": "slurm-client",
    "sacctmgr": "slurm-client", "sinfo": "slurm-client", "scancel": "slurm-client", "setpriv": "util-linux",
}
DB_PASSWORD = "slurmpw"


class ClusterError(RuntimeError):
    """The cluster did not come up."""


def missing() -> list[str]:
    """The executables (and their Debian packages) this module needs but cannot find."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [f"{exe} ({pkg})" for exe, pkg in BINARIES.items() if shutil.which(exe, path=path) is None]


def _exe(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(f"{name} not found; apt-get install {PACKAGES}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A running cluster; `env` is what a client (sbatch, sacct, submitit) needs."""

    root: Path
    ngpus: int
    cpus: int
    conf: Path
    name: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        """A client command against this cluster; its stdout."""
        r = subprocess.run([_exe(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **self.env}, check=False)
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} -> {r.returncode}: {r.stderr.strip()[-500:]}")
        return r.stdout

    def sacct(self, job_ids: list[str], fields: str = "JobIDRaw,State,ElapsedRaw,Submit,Start,End") -> list[dict[str, str]]:
        """One row per job allocation (no steps)."""
        names = fields.split(",")
        out = self.run("sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", fields)
        return [dict(zip(names, line.split("|"))) for line in out.splitlines() if line.strip()]

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - owned by the daemon
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **self.env})
        log.close()
        self.procs[name] = proc

    def _alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = (self.root / "log" / f"{name}.out").read_text(errors="replace")[-1500:]
            raise ClusterError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _until(self, what: str, check, timeout: float, daemon: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if daemon:
                self._alive(daemon)
            try:
                if check():
                    return
            except (OSError, subprocess.SubprocessError, ClusterError):
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-800:]}"
                                 for p in sorted((self.root / "log").glob("*")) if p.is_file())
                raise ClusterError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons it started (reverse order, by PID)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--user", "root", check=False, timeout=10)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.run("squeue", "-h", check=False, timeout=10).strip():
                    time.sleep(0.3)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.procs.clear()
        for top in Path("/sys/fs/cgroup").glob(f"*/slurm_{self.name}"):  # slurmd leaves its empty cgroups
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
                try:
                    d.rmdir()
                except OSError:
                    pass


def start(root: Path, ngpus: int = 4, timeout: float = 60) -> Cluster:
    """Start a cluster under `root` (created; must not be in use). See the module docstring."""
    if missing():
        raise ClusterError(f"missing: {', '.join(missing())}; apt-get install {PACKAGES}")
    root = Path(root).resolve()
    for sub in ("etc", "log", "run", "munge", "db", "ctld", "slurmd", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # munge and mysql traverse it, and every dir above it
    closed = [str(p) for p in root.parents if not os.stat(p).st_mode & 0o001]
    if closed:
        raise ClusterError(f"munged and mariadbd (other users) cannot traverse {', '.join(closed)}; use a root "
                           "directory whose parents are world-traversable (o+x)")
    cpus = max(4, os.cpu_count() or 1)
    name = "ar" + os.urandom(3).hex()
    cluster = Cluster(root=root, ngpus=ngpus, cpus=cpus, conf=root / "etc" / "slurm.conf", name=name)
    try:
        _start(cluster, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(c: Cluster, timeout: float) -> None:
    root = c.root
    ports = {k: _free_port() for k in ("ctld", "slurmd", "dbd", "db")}
    munge = root / "munge"
    shutil.chown(munge, "munge", "munge")
    os.chmod(munge, 0o700)
    key = munge / "munge.key"
    subprocess.run([_exe("mungekey"), "--create", "--force", f"--keyfile={key}"], check=True, capture_output=True)
    shutil.chown(key, "munge", "munge")
    os.chmod(key, 0o600)
    msock = root / "run" / "munge.socket"
    os.chmod(root / "run", 0o1777)
    c._spawn("munged", [_exe("setpriv"), "--reuid=munge", "--regid=munge", "--init-groups", "--",
                        _exe("munged"), "--foreground", "--force", f"--socket={msock}", f"--key-file={key}",
                        f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                        f"--seed-file={munge}/munged.seed"])
    c._until("munged's socket", msock.exists, timeout, "munged")

    # MariaDB: a private datadir, TCP on 127.0.0.1 only; root logs in through its socket
    data = root / "db" / "data"
    shutil.chown(root / "db", "mysql", "mysql")
    dsock = root / "db" / "mysqld.sock"
    r = subprocess.run([_exe("mariadb-install-db"), "--no-defaults", "--user=mysql", f"--datadir={data}",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise ClusterError(f"mariadb-install-db failed: {r.stdout[-800:]}{r.stderr[-800:]}")
    c._spawn("mariadbd", [_exe("mariadbd"), "--no-defaults", "--user=mysql", f"--datadir={data}",
                          f"--socket={dsock}", f"--port={ports['db']}", "--bind-address=127.0.0.1",
                          f"--pid-file={root}/db/mysqld.pid", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
                          "--innodb-log-file-size=16M"])
    sql = ["CREATE DATABASE IF NOT EXISTS slurm_acct_db;",
           f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';",
           f"CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '{DB_PASSWORD}';",
           "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
           "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"]

    def db_ready() -> bool:
        return subprocess.run([_exe("mariadb"), "--no-defaults", "-uroot", f"--socket={dsock}", "-e", " ".join(sql)],
                              capture_output=True, timeout=10, check=False).returncode == 0

    c._until("MariaDB", db_ready, timeout, "mariadbd")

    etc = root / "etc"
    auth = f"AuthType=auth/munge\nAuthInfo=socket={msock}\n"
    dbd_conf = etc / "slurmdbd.conf"
    dbd_conf.write_text(
        f"{auth}DbdHost=localhost\nDbdPort={ports['dbd']}\nSlurmUser=root\nPidFile={root}/run/slurmdbd.pid\n"
        f"LogFile={root}/log/slurmdbd.log\nStorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
        f"StoragePort={ports['db']}\nStorageUser=slurm\nStoragePass={DB_PASSWORD}\nStorageLoc=slurm_acct_db\n")
    os.chmod(dbd_conf, 0o600)
    for i in range(c.ngpus):
        node = root / "dev" / f"fakegpu{i}"
        if not node.exists():
            os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))  # a char device aliasing /dev/null
            os.chmod(node, 0o666)
    cgroup = "cgroup/v1" if Path("/sys/fs/cgroup/freezer").is_dir() else "cgroup/v2"
    (etc / "cgroup.conf").write_text(
        f"CgroupPlugin={cgroup}\nConstrainCores=no\nConstrainDevices=no\nConstrainRAMSpace=no\n")
    gpus = f"[0-{c.ngpus - 1}]" if c.ngpus > 1 else "0"
    (etc / "gres.conf").write_text(f"NodeName={c.name} Name=gpu File={root}/dev/fakegpu{gpus}\n")
    c.conf.write_text(
        f"ClusterName={c.name}\nSlurmctldHost=localhost\nSlurmctldPort={ports['ctld']}\nSlurmdPort={ports['slurmd']}\n"
        f"SlurmUser=root\n{auth}MpiDefault=none\nProctrackType=proctrack/cgroup\nTaskPlugin=task/none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nGresTypes=gpu\n"
        f"SlurmctldPidFile={root}/run/slurmctld.pid\nSlurmdPidFile={root}/run/slurmd.pid\n"
        f"StateSaveLocation={root}/ctld\nSlurmdSpoolDir={root}/slurmd\n"
        f"SlurmctldLogFile={root}/log/slurmctld.log\nSlurmdLogFile={root}/log/slurmd.log\n"
        f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
        f"AccountingStoragePort={ports['dbd']}\nAccountingStoragePass={msock}\nAccountingStorageTRES=gres/gpu\nJobAcctGatherType=jobacct_gather/none\n"
        "ReturnToService=2\nKillWait=5\nMinJobAge=300\nInactiveLimit=0\n"
        # the time limit is enforced on a coarse clock; keep the overrun short for tests
        "OverTimeLimit=0\n"
        # at least 4 CPUs, so 4 one-CPU jobs fit even on a smaller box (config_overrides lets slurmd
        # accept a node declared larger than it is)
        "SlurmdParameters=config_overrides\n"
        # the node has the cluster's unique name (slurmd's cgroups are named after it, so two
        # clusters on one host never share them); it lives at localhost
        f"NodeName={c.name} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={c.cpus} RealMemory=2000 "
        f"Gres=gpu:{c.ngpus} State=UNKNOWN\n"
        f"PartitionName=debug Nodes={c.name} Default=YES MaxTime=INFINITE State=UP\n")

    c._spawn("slurmdbd", [_exe("slurmdbd"), "-D"])
    c._until("slurmdbd", lambda: subprocess.run(
        [_exe("sacctmgr"), "-n", "list", "cluster"], capture_output=True, timeout=10,
        env={**os.environ, **c.env}, check=False).returncode == 0, timeout, "slurmdbd")
    c.run("sacctmgr", "-i", "add", "cluster", c.name, check=False)
    c._spawn("slurmctld", [_exe("slurmctld"), "-D", "-i", "-f", str(c.conf)])
    c._until("slurmctld", lambda: c.run("sinfo", "-h", timeout=10) is not None, timeout, "slurmctld")
    c._spawn("slurmd", [_exe("slurmd"), "-D", "-N", c.name, "-f", str(c.conf)])
    c._until("the node to be idle", lambda: "idle" in c.run("sinfo", "-h", "-o", "%T", timeout=10), timeout, "slurmd")
    c.run("sacctmgr", "-i", "add", "account", "default", f"Cluster={c.name}", check=False)
    c.run("sacctmgr", "-i", "add", "user", "root", "Account=default", check=False)
