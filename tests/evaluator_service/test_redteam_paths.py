"""Red team: a trial learns nothing of the host's layout, and its artifact nothing of the data.

Host paths (where the state dir, the evaluator's work dir and the data live) must not reach a
trial's view of /proc, nor any text that goes back to a specialist (failure line, log tail).
"""

from __future__ import annotations

from pathlib import Path

from tests.evaluator_service.conftest import run


def test_the_namespace_inits_cmdline_shows_no_host_path(toy, sandbox, tmp_path):
    hidden = str(tmp_path)[::-1]  # reversed, so no redaction of the failure text can hide a leak
    recipe = f"""\
import os
cmd = open("/proc/1/cmdline", "rb").read().decode(errors="replace")
parents = open(f"/proc/{{os.getppid()}}/cmdline", "rb").read().decode(errors="replace")
leaks = [w for w in (cmd + parents).split("\\0") if "{hidden}"[::-1] in w]
raise SystemExit("cmdline leaks %d, bwrap options shown %s" % (len(leaks), "--ro-bind" in cmd))
"""
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert "cmdline leaks 0, bwrap options shown False" in out.failure, out.failure


def test_failures_and_log_tails_show_sandbox_paths_only(toy, sandbox, tmp_path):
    recipe = """\
import os
for line in open("/proc/self/mountinfo"):
    print("MOUNT", line.split()[3], line.split()[4])
open(os.path.join(os.path.realpath(os.environ["AR_DATA"]), "missing.npy"))
"""
    task, data = toy(recipe)
    out = run(task, data, sandbox)
    assert out.status == "crash"
    assert "MOUNT" in out.log_tail and "/data" in out.log_tail
    assert str(tmp_path) not in out.log_tail and str(tmp_path) not in out.failure, out.log_tail
    assert "'/data/missing.npy'" in out.failure
    assert "MOUNT /trial /trial" in out.log_tail  # the scratch bind, named as the trial sees it


def test_the_interactive_artifact_sees_its_own_files_and_nothing_else(tmp_path, sandbox):
    """An artifact of a few bytes that reads the data, the recipe or the train scratch at
    answer time would carry a model it never paid for in its size."""
    from evaluator_service.evaluate import evaluate, prepare_data
    from evaluator_service.models import TrialSpec
    from tests.evaluator_service.toytask import ChatTask

    answer = """\
import glob, os, sys
seen = sorted(p for p in glob.glob("/*") + glob.glob("/trial/*") + glob.glob("/data/*")
              if not p.startswith(("/proc", "/dev", "/usr", "/etc", "/bin", "/lib", "/sbin", "/tmp", "/root")))
env = sorted(k for k in os.environ if k.startswith("AR_"))
sys.stderr.write("SEEN %s ENV %s\\n" % (seen, env))
raise SystemExit(3)
"""
    task = ChatTask(tmp_path / "chat", answer=answer)
    out = evaluate(task, TrialSpec(task="chat", tree=task.recipe_dir()), sandbox=sandbox,
                   data_dirs=prepare_data(task, tmp_path / "data"))
    line = next(x for x in out.log_tail.splitlines() if x.startswith("SEEN "))
    seen = eval(line[5:line.index(" ENV ")])  # noqa: S307 - a list literal the test's own recipe printed
    interpreter_tops = {"/" + Path(r).parts[1] for r in sandbox.config.python_roots}
    assert set(seen) - interpreter_tops == {"/trial", "/trial/answer.py", "/trial/weights.bin"}, seen
    assert "recipe.py" not in line and "answer_src.py" not in line
    assert "AR_DATA" not in line[line.index(" ENV "):], line
