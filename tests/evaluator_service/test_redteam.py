"""Red team: hostile recipes are caught with the right status, and nothing leaks.

Each test is one attack from the issue. The recipe tries it for real inside a real
bubblewrap sandbox; the test asserts the status the evaluator assigns and, from the host
side, that the attack had no effect (no canary in any output, no file written, no process
left, no connection made).
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from evaluator_service._proc import pids_of_uid
from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.models import TrialSpec
from evaluator_service.sandbox import Sandbox
from tests.evaluator_service.conftest import make_sandbox, run
from tests.evaluator_service.toytask import CANARY, ChatTask, ToyTask

WRONG_PREDS = "import json\njson.dump([0] * 20, open('preds.json', 'w'))\n"


def _procs_with(marker: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.append(pid)
        except OSError:
            continue
    return found


def test_fake_score_and_fake_time_are_ignored(toy, sandbox):
    recipe = WRONG_PREDS + """\
import json, time
time.sleep(0.4)
print("val_accuracy: 1.0\\ntrain_s: 0.001\\nscore: 0.001")
json.dump({"accuracy": 1.0}, open("score.json", "w"))
try:
    open("/result/score.json", "w").write('{"accuracy": 1.0}')
except OSError as e:
    print("no /result:", e)
"""
    task, data = toy(recipe, outputs=("preds.json", "score.json"))
    out = run(task, data, sandbox)
    assert out.status == "disqualified"  # the harness scored the real predictions: 0.5 < 0.9
    assert out.metrics["accuracy"] == 0.5
    assert out.timings["train"] >= 0.4 and not out.self_reported


def test_overrun_with_detached_grandchildren_leaves_nothing(toy, sandbox):
    marker = f"ar-redteam-{uuid.uuid4().hex}"
    recipe = f"""\
import os, subprocess, time
# a double-forked setsid daemon and a plain setsid child, both meant to outlive the trial
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "exec -a {marker} sleep 300"])
    os._exit(0)
subprocess.Popen(["/bin/sh", "-c", "exec -a {marker} sleep 300"], start_new_session=True)
time.sleep(300)
"""
    task, data = toy(recipe, budgets={"train": 1.0})
    out = run(task, data, sandbox)
    assert out.status == "train_budget_overrun"
    assert _procs_with(marker) == [] and pids_of_uid(sandbox.uid_for(0)[0]) == []


def test_daemon_left_by_a_finished_trial_dies_with_it(toy, sandbox):
    marker = f"ar-redteam-{uuid.uuid4().hex}"
    recipe = f"""\
import subprocess
subprocess.Popen(["/bin/sh", "-c", "setsid sh -c 'exec -a {marker} sleep 300' &"])
""" + "import json, os\njson.dump([x % 2 for x in range(20)], open('preds.json', 'w'))\n"
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert out.status == "valid"
    assert _procs_with(marker) == []


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_hidden_data_is_unreachable_by_every_route(tmp_path):
    # package data: a declared copy of the labels and an undeclared copy of the held-out text
    pkg = tmp_path / "site" / "toypkg" / "data"
    pkg.mkdir(parents=True)
    sandbox = make_sandbox(tmp_path, extra_ro={"/opt/site": tmp_path / "site"})
    task = ToyTask(tmp_path / "task", hidden_sources=[pkg / "labels.json"], recipe=_hunter(tmp_path),
                   budgets={"train": 40.0})
    data = prepare_data(task, tmp_path / "data")
    heldout = (CANARY + " held-out text\n") * 40
    (data.hidden / "heldout.txt").write_text(heldout)
    (pkg / "labels.json").write_bytes((data.hidden / "labels.json").read_bytes())
    (pkg / "heldout_copy.txt").write_text(heldout)  # not declared: found by content
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert "labels not found" in out.failure
    assert CANARY not in out.log_tail and CANARY not in out.failure
    assert "visible: /opt/site/toypkg/data" in out.log_tail  # the package dir itself is there


def _hunter(tmp_path: Path) -> str:
    """A recipe that looks for the hidden labels everywhere it might be."""
    return f"""\
import os
tries = ["{tmp_path}/data/hidden/labels.json", "/hidden/labels.json", "/opt/site/toypkg/data/labels.json",
         "/opt/site/toypkg/data/heldout_copy.txt", "{tmp_path}/task/scorer/score.py"]
needle = "{CANARY[:7]}".encode() + "{CANARY[7:]}".encode()
found = []
for p in tries:
    try:
        found.append((p, open(p).read()[:80]))
    except OSError:
        pass
print("visible:", "/opt/site/toypkg/data", sorted(os.listdir("/opt/site/toypkg/data")))
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev", "/usr", "/trial")):
        dirs[:] = []
        continue
    for f in files:
        p = os.path.join(root, f)
        try:
            if os.path.getsize(p) < 1 << 16 and needle in open(p, "rb").read():
                found.append((p, "canary"))
        except OSError:
            pass
if found:
    print("LEAKED", found)
else:
    raise FileNotFoundError("labels not found")
"""


def test_environment_holds_no_secrets(toy, sandbox, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-canary-api-key")
    monkeypatch.setenv("AR_DATABASE_URL", "postgresql://canary:pw@db/lineage")
    recipe = """\
import os, glob
seen = dict(os.environ)
for path in glob.glob("/proc/*/environ"):
    try:
        seen[path] = open(path, "rb").read().decode(errors="replace")
    except OSError:
        pass
raise SystemExit("ENV " + repr(seen))
"""
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert "ENV" in out.log_tail
    assert "canary" not in out.log_tail and "ANTHROPIC" not in out.log_tail


def test_network_is_unreachable(toy, sandbox, tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    port = server.getsockname()[1]
    unix_path = tmp_path / "db.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    recipe = f"""\
import socket
results = []
for family, addr in [(socket.AF_INET, ("1.1.1.1", 443)), (socket.AF_INET, ("127.0.0.1", {port})),
                     (socket.AF_UNIX, "{unix_path}")]:
    s = socket.socket(family)
    s.settimeout(1)
    try:
        s.connect(addr); results.append("LEAK")
    except OSError as e:
        results.append(type(e).__name__)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()   # loopback inside is fine
raise ConnectionError("no network: " + ",".join(results))
"""
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert out.status == "crash" and "ConnectionError: no network" in out.failure
    assert "LEAK" not in out.failure
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()
    unix.close()


def test_writes_outside_scratch_and_over_the_scorer_fail(toy, sandbox, tmp_path):
    marker = f"/tmp/ar-pwned-{uuid.uuid4().hex}"
    task, data = toy(_writer(tmp_path, marker))
    scorer_before = (task.scorer_dir() / "score.py").read_text()
    out = run(task, data, sandbox)
    assert out.status == "valid"  # the trial could only hurt its own scratch copy
    assert (task.scorer_dir() / "score.py").read_text() == scorer_before
    assert not os.path.exists(marker) and not (tmp_path / "pwned").exists()
    assert not os.path.exists(f"{sys.prefix}/lib/pwned.py")
    assert (data.public / "inputs.json").read_text().startswith("[0, 1")


def _writer(tmp_path: Path, marker: str) -> str:
    targets = [f"{tmp_path}/task/scorer/score.py", "/scorer/score.py", "/data/inputs.json", marker,
               f"{tmp_path}/pwned", f"{sys.prefix}/lib/pwned.py", "/usr/lib/pwned", "/etc/passwd"]
    return f"""\
import json, os
for p in {targets!r}:
    try:
        open(p, "w").write("pwned")
        print("WROTE", p)
    except OSError as e:
        print("refused", p, type(e).__name__)
xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
json.dump([x % 2 for x in xs], open("preds.json", "w"))
"""


def test_memory_exhaustion_is_a_crash_not_a_hang(toy, sandbox):
    recipe = "hog = []\nwhile True:\n    hog.append(bytearray(64 << 20))\n"
    task, data = toy(recipe, limits={"memory_bytes": 512 << 20})
    out = run(task, data, sandbox)
    assert out.status == "crash" and "MemoryError" in out.failure
    assert out.timings["train"] < 4


@pytest.mark.parametrize(
    ("recipe", "expect"),
    [
        ("import os\nfor i in range(1000):\n    open(f'f{i}', 'wb').write(os.urandom(1 << 20))\n", "scratch use exceeded"),
        ("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n", "File too large"),
        ("f = open('/tmp/big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 19))\n", "No space left"),
        ("for i in range(200000):\n    open(f'e{i}', 'w').close()\n", "scratch use exceeded"),
    ],
    ids=["many-files", "one-file", "private-tmp", "empty-files"],
)
def test_disk_exhaustion_fails_cleanly(toy, sandbox, recipe, expect):
    task, data = toy(recipe, limits={"scratch_bytes": 16 << 20})
    sandbox = Sandbox(sandbox.config.model_copy(update={"tmp_bytes": 8 << 20}))
    out = run(task, data, sandbox)
    assert out.status == "crash" and expect in out.failure, out.failure


def test_a_gigabyte_of_output_is_cut_at_the_cap(toy, sandbox):
    recipe = "import sys\nfor _ in range(1024):\n    sys.stdout.buffer.write(b'z' * (1 << 20))\n"
    task, data = toy(recipe, limits={"output_cap_bytes": 1 << 20})
    out = run(task, data, sandbox)
    assert out.status == "crash" and "output exceeded" in out.failure
    assert out.timings["train"] < 3 and len(out.log_tail) <= 4000


def test_fork_bomb_hits_the_process_cap(toy, sandbox):
    recipe = "import os, time\nfor _ in range(10000):\n    if os.fork() == 0:\n        time.sleep(30); os._exit(0)\n"
    task, data = toy(recipe, limits={"max_procs": 32})
    out = run(task, data, sandbox)
    assert out.status == "crash" and "BlockingIOError" in out.failure
    assert pids_of_uid(sandbox.uid_for(0)[0]) == []


def test_unnormalised_probabilities_are_disqualified(tmp_path, sandbox):
    task = ChatTask(tmp_path / "chat", answer="import sys\nfor line in sys.stdin:\n    print('0.9 ' * int(line), flush=True)\n")
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    assert out.status == "disqualified" and out.failure == "unnormalised probabilities"


@pytest.mark.parametrize("extra, status", [(0, "valid"), (1, "size_blocked")])
def test_artifact_one_byte_over_the_cap_is_size_blocked(tmp_path, sandbox, extra, status):
    from tests.evaluator_service.toytask import GOOD_ANSWER

    from evaluator_service._files import ARTIFACT_ENTRY_BYTES

    cap = 4096
    # two files: their bytes, their names, and a fixed cost for each entry
    overhead = len("answer.py") + len("weights.bin") + 2 * ARTIFACT_ENTRY_BYTES
    task = ChatTask(tmp_path / "chat", cap=cap, weight_bytes=cap - len(GOOD_ANSWER.encode()) - overhead + extra)
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    assert out.status == status, out
    assert out.artifact_bytes == cap + extra
    assert ("eval" in out.timings) == (status == "valid")


def test_interactive_artifact_that_hangs_is_an_eval_overrun(tmp_path, sandbox):
    task = ChatTask(tmp_path / "chat", answer="import time\ntime.sleep(300)\n",
                    budgets={"train": 5.0, "eval": 1.0})
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    assert out.status == "eval_budget_overrun"
    assert 1.0 <= out.timings["eval"] < 2.5



NAME_PAYLOAD = """\
import os
os.makedirs("artifact", exist_ok=True)
open("artifact/answer.py", "w").write(open("answer_src.py").read())
payload = os.urandom({payload}).hex()
for i in range(0, len(payload), {chunk}):  # the payload lives in file names of empty files
    open("artifact/%05d%s" % (i // {chunk}, payload[i:i + {chunk}]), "w").close()
"""


@pytest.mark.parametrize(("payload", "chunk", "expect"), [
    (4000, 200, "over the 10000 byte cap"),        # 40 empty files with long names
    (3000, 2, "files and dirs, over the cap of 1000"),  # 3,000 empty files
], ids=["long-names", "many-files"])
def test_payload_in_file_names_counts_toward_the_cap(tmp_path, sandbox, payload, chunk, expect):
    task = ChatTask(tmp_path / "chat", cap=10_000)
    (task.recipe_dir() / "recipe.py").write_text(NAME_PAYLOAD.format(payload=payload, chunk=chunk))
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    assert out.status == "size_blocked", out
    assert expect in out.failure
