"""The sandbox itself: identity, environment, filesystem, network, kill, output, opt-out."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from evaluator_service._proc import pids_of_uid
from evaluator_service.exceptions import IsolationUnavailableError
from evaluator_service.sandbox import RunSpec, Sandbox, SandboxConfig
from tests.evaluator_service.conftest import make_sandbox

PY = sys.executable


def _scratch(sandbox: Sandbox, tmp_path: Path, files: dict[str, str] | None = None, slot: int = 0) -> Path:
    scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
    scratch.mkdir()
    for name, text in (files or {}).items():
        (scratch / name).write_text(text)
    return sandbox.prepare_dir(scratch, slot)


def _py(sandbox: Sandbox, tmp_path: Path, code: str, *, budget: float = 4.0, **kw) -> tuple:
    scratch = _scratch(sandbox, tmp_path, {"main.py": code}, kw.get("slot", 0))
    run = sandbox.run(RunSpec(argv=(PY, "main.py"), scratch=scratch, budget_s=budget, **kw))
    return run, scratch


def test_trial_runs_unprivileged_with_no_capabilities(sandbox, tmp_path):
    code = ("import os; s = open('/proc/self/status').read()\n"
            "print(os.getuid(), [l for l in s.splitlines() if l.startswith(('CapEff', 'NoNewPrivs'))])")
    run, _ = _py(sandbox, tmp_path, code, slot=3)
    assert run.ok, run.output
    uid = sandbox.uid_for(3)[0]
    assert uid >= 62000 and run.output.split()[0] == str(uid)
    assert "CapEff:\\t0000000000000000" in run.output and "NoNewPrivs:\\t1" in run.output


def test_environment_is_an_allow_list(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-canary-env")
    run, _ = _py(sandbox, tmp_path, "import os, json; print(json.dumps(dict(os.environ)))", env={"AR_SEED": "4"})
    env = json.loads(run.output)
    assert "sk-canary-env" not in run.output
    assert env["AR_SEED"] == "4" and env["HOME"] == "/trial" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "PYTHONUNBUFFERED", "PWD",
                        "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY",
                        "AR_THREADS", "TORCHINDUCTOR_COMPILE_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
                        "AR_SEED", "LC_CTYPE"}


def test_only_scratch_is_writable_and_host_tmp_is_invisible(sandbox, tmp_path):
    marker = f"/tmp/ar-sandbox-{uuid.uuid4().hex}"
    code = f"""
import os
res = {{}}
for p in ["/usr/evil", "/etc/evil", "{sys.prefix}/evil.py", "{marker}", "/trial/ok"]:
    try:
        open(p, "w").write("x"); res[p] = "wrote"
    except OSError as e:
        res[p] = type(e).__name__
print(res)
print(sorted(os.listdir("/")))
"""
    run, scratch = _py(sandbox, tmp_path, code)
    assert run.ok, run.output
    assert (scratch / "ok").exists()
    assert not os.path.exists(marker) and not os.path.exists(f"{sys.prefix}/evil.py")
    assert "'/usr/evil': 'OSError'" in run.output
    assert str(tmp_path) not in run.output


def test_no_network(sandbox, tmp_path):
    code = """
import socket
for addr in [("1.1.1.1", 80), ("127.0.0.1", 22)]:
    try:
        socket.create_connection(addr, timeout=1); print("CONNECTED", addr)
    except OSError as e:
        print("blocked", e.errno)
"""
    run, _ = _py(sandbox, tmp_path, code)
    assert "CONNECTED" not in run.output and run.output.count("blocked") == 2


def test_overrun_kills_detached_grandchild_and_verifies(sandbox, tmp_path):
    marker = f"ar-daemon-{uuid.uuid4().hex}"
    code = f"""
import os, time, subprocess
subprocess.Popen(["/bin/sh", "-c", "setsid sh -c 'exec -a {marker} sleep 300' &"])
time.sleep(300)
"""
    run, _ = _py(sandbox, tmp_path, code, budget=1.0)
    assert run.timed_out and run.killed == "budget"
    assert 1.0 <= run.wall_s < 2.5
    assert not any(marker in _cmdline(p) for p in os.listdir("/proc") if p.isdigit())
    assert pids_of_uid(sandbox.uid_for(0)[0]) == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_output_is_bounded_and_flood_is_killed(sandbox, tmp_path):
    code = "import sys\nwhile True:\n    sys.stdout.buffer.write(b'y' * 65536)\n"
    run, _ = _py(sandbox, tmp_path, code, output_cap=1 << 20)
    assert run.killed == "output_cap"
    assert run.output_bytes > 1 << 20
    assert len(run.output) < 64 << 10


def test_gpu_lease_sets_visible_devices_and_binds_sys(sandbox, tmp_path):
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.path.isdir('/sys/class'), os.environ['NCCL_SOCKET_IFNAME'])"
    run, _ = _py(sandbox, tmp_path, code, gpus=("2", "5"))
    assert run.output.split() == ["2,5", "True", "lo"]


def test_missing_bubblewrap_refuses_without_opt_out(tmp_path):
    sandbox = make_sandbox(tmp_path, bwrap=str(tmp_path / "no-bwrap"))
    with pytest.raises(IsolationUnavailableError, match="--unisolated"):
        sandbox.probe()


def test_unisolated_opt_out_runs_plain_and_says_so(tmp_path):
    sandbox = make_sandbox(tmp_path, bwrap=str(tmp_path / "no-bwrap"), unisolated=True)
    scratch = _scratch(sandbox, tmp_path, {"main.py": "import os; print(os.environ['AR_DATA'], os.getcwd())"})
    data = tmp_path / "public"
    data.mkdir()
    run = sandbox.run(RunSpec(argv=(PY, "/trial/main.py"), scratch=scratch, budget_s=4, ro={"/data": data},
                              env={"AR_DATA": "/data"}))
    assert run.ok and run.unisolated
    assert run.output.split() == [str(data), str(scratch)]


def test_multiprocessing_works_with_the_private_dev_shm(sandbox, tmp_path):
    code = ("import multiprocessing as mp\n"
            "if __name__ == '__main__':\n"
            "    with mp.Pool(2) as pool:\n"
            "        print(sum(pool.map(abs, range(-5, 5))))\n")
    run, _ = _py(sandbox, tmp_path, code)
    assert run.ok, run.output
    assert run.output.strip() == "25"


def test_relative_work_dir_is_resolved_once(tmp_path, monkeypatch):
    """`--state runs/demo` reached bwrap as a relative bind source: "Can't find source path"."""
    from tests.evaluator_service.conftest import TEST_UID_BASE

    monkeypatch.chdir(tmp_path)
    sb = Sandbox(SandboxConfig(workdir=Path("runs/demo/evaluator"), uid_base=TEST_UID_BASE))
    try:
        assert sb.config.workdir == tmp_path / "runs" / "demo" / "evaluator"
        Path("scratch").mkdir()
        scratch = sb.prepare_dir(Path("scratch").resolve(), 0)
        monkeypatch.chdir("/")  # a later change of directory must not matter either
        run = sb.run(RunSpec(argv=(sb.config.python, "-c", "print('ran')"), scratch=scratch, budget_s=20))
        assert run.ok and "ran" in run.output, run.output
    finally:
        sb.close()
