"""Red team: nothing a trial leaves behind reaches a later phase, seed or trial.

A recipe stores its answer in every channel that could outlive a sandbox of a fixed uid
(kernel keyrings, SysV and POSIX IPC, abstract sockets, files in every writable place) during
one run, and a later run looks for it. The later run exits with the list of channels it found
open, so the assertions read exactly what the attacker saw. A second group checks that the
system calls container runtimes refuse are refused inside a trial, scorer and artifact.
"""

from __future__ import annotations

import json
import os
import platform

import pytest

from tests.evaluator_service.conftest import run

# Syscall numbers of the calls the attack uses through libc's syscall().
_NR = {"x86_64": {"add_key": 248, "keyctl": 250, "request_key": 249},
       "aarch64": {"add_key": 217, "keyctl": 219, "request_key": 218}}[platform.machine()]

CHANNELS = """\
import ctypes, errno, json, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
NR = {nr!r}
KEY_USER, KEY_SESSION, KEY_USER_SESSION = -4, -3, -5
SECRET = b"ANSWER-" + b"%d" % {tag}
found, refused = [], []

def keyring_put(ring):
    r = libc.syscall(NR["add_key"], b"user", b"ar-chan", SECRET, len(SECRET), ring)
    if r < 0:
        refused.append("add_key:" + errno.errorcode.get(ctypes.get_errno(), "?"))

def keyring_get(ring):
    kid = libc.syscall(NR["keyctl"], 10, ring, b"user", b"ar-chan", 0)  # KEYCTL_SEARCH
    if kid < 0:
        return None
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(NR["keyctl"], 11, kid, buf, 256)  # KEYCTL_READ
    return buf.raw[:n] if n > 0 else None

def sysv_put():
    libc.shmat.restype = ctypes.c_void_p
    sid = libc.shmget(0x4152, 64, 0o1000 | 0o666)  # IPC_CREAT
    if sid >= 0:
        addr = libc.shmat(sid, None, 0)
        ctypes.memmove(addr, SECRET, len(SECRET))

def sysv_get():
    libc.shmat.restype = ctypes.c_void_p
    sid = libc.shmget(0x4152, 64, 0o666)
    if sid < 0:
        return None
    return ctypes.string_at(libc.shmat(sid, None, 0), len(SECRET))

FILES = ["/dev/shm/ar-chan", "/tmp/ar-chan", os.path.expanduser("~/ar-chan"), "/trial/../ar-chan",
         "/var/tmp/ar-chan", "/dev/mqueue/ar-chan", "/run/ar-chan", "/ar-chan"]

def put():
    for ring in (KEY_USER, KEY_SESSION, KEY_USER_SESSION):
        keyring_put(ring)
    sysv_put()
    for p in FILES:
        try:
            open(p, "wb").write(SECRET)
        except OSError:
            pass
    if os.fork() == 0:  # a daemon serving the answer on an abstract socket
        os.setsid()
        s = socket.socket(socket.AF_UNIX)
        s.bind(b"\\0ar-chan")
        s.listen()
        while True:
            c, _ = s.accept()
            c.sendall(SECRET)
            c.close()
    time.sleep(0.3)

def get():
    for name, ring in (("user keyring", KEY_USER), ("session keyring", KEY_SESSION),
                       ("user session keyring", KEY_USER_SESSION)):
        if keyring_get(ring) == SECRET:
            found.append(name)
    if sysv_get() == SECRET:
        found.append("sysv shm")
    for p in FILES:
        try:
            if open(p, "rb").read() == SECRET:
                found.append(p)
        except OSError:
            pass
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(b"\\0ar-chan")
        if s.recv(64) == SECRET:
            found.append("abstract socket")
    except OSError:
        pass
"""


def _channel_recipe(store_when: str, tag: int = 7) -> str:
    """Store in every channel when `store_when` holds, else read and exit with what was found."""
    return CHANNELS.format(nr=_NR, tag=tag) + f"""
if {store_when}:
    put()
    print("stored; refused:", refused)
    json.dump([x % 2 for x in range(20)], open("preds.json", "w"))
else:
    get()
    raise SystemExit("open channels: " + json.dumps(found))
"""


def _open_channels(failure: str) -> list[str]:
    assert "open channels: " in failure, failure
    return json.JSONDecoder().raw_decode(failure.split("open channels: ", 1)[1])[0]


def test_smoke_phase_cannot_hand_answers_to_the_timed_seeds(toy, sandbox):
    task, data = toy(_channel_recipe("os.environ['AR_SMOKE'] == '1'"), smoke=True)
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert _open_channels(out.failure) == []


def test_one_seed_cannot_hand_answers_to_the_next(toy, sandbox):
    task, data = toy(_channel_recipe("os.environ['AR_SEED'] == '0'"), seeds=2)
    out = run(task, data, sandbox)
    assert out.status == "crash" and "seed 1" in out.failure
    assert _open_channels(out.failure) == []


def test_one_trial_cannot_hand_answers_to_the_next_on_its_slot(toy, sandbox, tmp_path):
    task, data = toy(_channel_recipe("not os.path.exists('reader')"))
    first = run(task, data, sandbox)
    assert first.status == "valid"
    reader = tmp_path / "reader-tree"
    reader.mkdir()
    (reader / "recipe.py").write_text((task.recipe_dir() / "recipe.py").read_text())
    (reader / "reader").write_text("")
    second = run(task, data, sandbox, tree=reader)
    assert second.status == "crash"
    assert _open_channels(second.failure) == []


def test_sweep_clears_the_slot_uids_keys(toy, sandbox):
    """Defence in depth: keys the uid holds (however they got there) are gone after a phase."""
    import subprocess

    uid = sandbox.uid_for(0)[0]
    code = ("import ctypes; l = ctypes.CDLL(None); "
            f"print(l.syscall({_NR['add_key']}, b'user', b'left', b'x', 1, -4))")
    added = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                            sandbox.config.python, "-I", "-S", "-c", code],
                           capture_output=True, text=True, check=True)
    assert int(added.stdout) > 0
    task, data = toy()
    assert run(task, data, sandbox).status == "valid"
    probe = ("import ctypes; l = ctypes.CDLL(None); "
             f"print(l.syscall({_NR['keyctl']}, 10, -4, b'user', b'left', 0))")
    left = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           sandbox.config.python, "-I", "-S", "-c", probe],
                          capture_output=True, text=True, check=True)
    assert int(left.stdout) < 0


def test_the_callers_session_keyring_is_not_inherited(toy, sandbox):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    secret = b"caller-secret-in-session-keyring"
    kid = libc.syscall(_NR["add_key"], b"user", b"ar-caller", secret, len(secret), -3)
    assert kid > 0
    try:
        recipe = CHANNELS.format(nr=_NR, tag=1) + """
kid = libc.syscall(NR["keyctl"], 10, KEY_SESSION, b"user", b"ar-caller", 0)
buf = ctypes.create_string_buffer(256)
n = libc.syscall(NR["keyctl"], 11, kid, buf, 256) if kid > 0 else -1
raise SystemExit("session read: %r errno %d" % (buf.raw[:max(n, 0)], ctypes.get_errno()))
"""
        task, data = toy(recipe)
        out = run(task, data, sandbox)
        assert out.status == "crash" and "session read: b''" in out.failure, out.failure
        assert secret.decode() not in out.log_tail
    finally:
        libc.syscall(_NR["keyctl"], 9, kid)  # KEYCTL_INVALIDATE


REFUSED = """\
import ctypes, errno, json, os, platform
libc = ctypes.CDLL(None, use_errno=True)
calls = {calls!r}
out = {{}}
for name, (nr, args) in calls.items():
    r = libc.syscall(nr, *args)
    out[name] = "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
allowed = {{k: v for k, v in out.items() if v != "EPERM"}}
raise SystemExit("refused %d, not refused: %s" % (len(out) - len(allowed), json.dumps(allowed)))
"""

# name -> (x86_64 number, aarch64 number, args): each call would succeed or fail differently
# without the filter (EPERM is the filter's answer; the kernel alone would say EINVAL, EFAULT…).
_CALLS = {
    "add_key": (248, 217, (b"user", b"k", b"v", 1, -4)),
    "keyctl": (250, 219, (0, -4, 0)),
    "request_key": (249, 218, (b"user", b"k", 0, 0)),
    "ptrace": (101, 117, (16, 1, 0, 0)),  # PTRACE_ATTACH to pid 1
    "mount": (165, 40, (b"none", b"/tmp", b"tmpfs", 0, 0)),
    "umount2": (166, 39, (b"/tmp", 0)),
    "unshare": (272, 97, (0x10000000,)),  # CLONE_NEWUSER
    "setns": (308, 268, (0, 0)),
    "bpf": (321, 280, (0, 0, 0)),
    "perf_event_open": (298, 241, (0, 0, -1, -1, 0)),
    "userfaultfd": (323, 282, (0,)),
    "kexec_load": (246, 104, (0, 0, 0, 0)),
    "init_module": (175, 105, (0, 0, b"")),
    "finit_module": (313, 273, (-1, b"", 0)),
    "pivot_root": (155, 41, (b"/", b"/")),
    "process_vm_readv": (310, 270, (1, 0, 0, 0, 0, 0)),
    "open_by_handle_at": (304, 265, (-1, 0, 0)),
    "fsopen": (430, 430, (b"tmpfs", 0)),
    "io_uring_setup": (425, 425, (1, 0)),
}


def _refused_recipe() -> str:
    col = 0 if platform.machine() == "x86_64" else 1
    return REFUSED.format(calls={k: (v[col], v[2]) for k, v in _CALLS.items()})


def test_dangerous_syscalls_are_refused_in_trials(toy, sandbox):
    task, data = toy(_refused_recipe())
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert f"refused {len(_CALLS)}, not refused: {{}}" in out.failure, out.failure


@pytest.mark.parametrize("namespace_flag", [0x10000000, 0x20000000, 0x40000000, 0x00020000])
def test_clone_into_new_namespaces_is_refused(toy, sandbox, namespace_flag):
    """unshare and clone with a CLONE_NEW* flag; clone3 answers ENOSYS so libc falls back."""
    recipe = f"""\
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare({namespace_flag})
e1 = errno.errorcode.get(ctypes.get_errno(), "?") if r < 0 else "ok"
pid = os.fork()  # plain fork still works
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
raise SystemExit(f"unshare {{e1}} fork ok")
"""
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert "unshare EPERM fork ok" in out.failure, out.failure


def test_scorer_and_artifact_run_under_the_filter_too(tmp_path, sandbox):
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from tests.evaluator_service.toytask import ChatTask

    answer = _refused_recipe().replace("raise SystemExit(", "import sys\nsys.stderr.write(").replace(
        "json.dumps(allowed)))", "json.dumps(allowed)) + '\\n')\nraise SystemExit(3)")
    task = ChatTask(tmp_path / "chat", answer=answer)
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    assert out.status == "crash"
    assert f"refused {len(_CALLS)}, not refused: {{}}" in out.log_tail, out.log_tail


def test_scorer_runs_under_the_filter_too(toy, sandbox):
    scorer = _refused_recipe().replace("raise SystemExit(", "msg = (") + (
        'open(os.environ["AR_RESULT"], "w").write(json.dumps({"error": msg}))\n')
    task, data = toy(scorer=scorer)
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert f"refused {len(_CALLS)}, not refused: {{}}" in out.failure, out.failure


def test_nothing_the_slot_uid_owns_and_no_cgroup_outlives_the_trial(toy, sandbox):
    """Files the uid owns and cgroup state are the other channels a fixed uid could use."""
    before = set(sandbox.cgroup_parent.glob("run-*")) if sandbox.cgroup_parent else set()
    task, data = toy(_channel_recipe("True"))
    assert run(task, data, sandbox).status == "valid"
    uid = sandbox.uid_for(0)[0]
    owned = [p for p in sandbox.config.workdir.rglob("*") if p.lstat().st_uid == uid]
    assert owned == []
    if sandbox.cgroup_parent:  # new run cgroups left behind and empty would be this trial's
        new = set(sandbox.cgroup_parent.glob("run-*")) - before
        assert [c for c in new if _empty_cgroup(c)] == []


def _empty_cgroup(path) -> bool:
    try:
        return "populated 0" in (path / "cgroup.events").read_text()
    except OSError:  # removed meanwhile: another evaluator's run that just ended
        return False


def test_keys_are_cleared_when_the_project_lives_in_a_private_dir(tmp_path, sandbox):
    """A slot uid cannot read the launcher under a 0700 home (a user's checkout, pytest's temp
    dir): the sweep starts as root and drops to the uid itself. Before, every sweep failed there
    and took the evaluator's worker thread with it."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO

    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    shutil.copytree(REPO / "evaluator_service", private / "evaluator_service",
                    ignore=shutil.ignore_patterns("__pycache__"))
    uid = sandbox.uid_for(0)[0] + 7  # a uid of its own, clear of the fixture's
    add = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-I",
                          "-S", "-c", f"import ctypes; print(ctypes.CDLL(None).syscall({_NR['add_key']}, "
                          "b'user', b'left', b'x', 1, -4))"], capture_output=True, text=True, check=True)
    assert int(add.stdout) > 0
    code = (f"import sys; sys.path[:0] = [{str(private)!r}, {str(REPO)!r}]\n"
            "from pathlib import Path\nfrom evaluator_service.sandbox import Sandbox, SandboxConfig\n"
            f"sb = Sandbox(SandboxConfig(workdir=Path({str(tmp_path / 'w')!r}), uid_base={uid}))\n"
            "assert sb.uid_for(0)[0] == " + str(uid) + "\nsb.clear_keys(0)\nprint('cleared')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "cleared" in done.stdout, done.stderr[-2000:]
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-I",
                            "-S", "-c", f"import ctypes; print(ctypes.CDLL(None).syscall({_NR['keyctl']}, 10, -4, "
                            "b'user', b'left', 0))"], capture_output=True, text=True, check=True)
    assert int(probe.stdout) < 0
