"""README's two commands, exactly as a new user types them, in a fresh clone.

The first code block of README.md holds them: (1) install and run a real search on the
embedded default, (2) install the test dependencies and pass the tests. The first is run
here literally, relative paths and all, in a `git clone` of this repository (what is
committed is what a user gets). The second is what `.ci/run` executes, read from README.md
itself, so CI runs the test command README gives and no copy of it can drift.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def readme_commands() -> list[str]:
    """The command lines (not comments) of README.md's first fenced code block."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md has no code block"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert text.index("```") < text.index("\n## "), "the commands come before any section"
    run, test = readme_commands()
    assert run.startswith("./install.sh && ") and " run " in run
    assert test.startswith("./install.sh --dev && ") and "pytest" in test


def test_ci_runs_the_test_command_that_readme_gives():
    ci = (REPO / ".ci" / "run").read_text()
    assert "README.md" in ci
    script = ci[: ci.index("# --- run ---")] + 'printf "%s" "$test_command"\n'
    got = subprocess.run(["bash", "-c", script, str(REPO / ".ci" / "run")], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert got.stdout == readme_commands()[1]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_first_command_runs_literally_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    command = readme_commands()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AR_", "PYTEST", "VIRTUAL_ENV"))}
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=2300)
    wall = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    state = clone / "runs" / "demo"  # the relative path README uses
    assert (state / "progress.png").stat().st_size > 1000
    trials = int(re.search(r"--trials (\d+)", command).group(1))
    with sqlite3.connect(state / "lineage.db") as db:
        rows = db.execute("SELECT status FROM trial WHERE exp_id > 0").fetchall()
    statuses = [s for (s,) in rows]
    # every trial accepted within the budget was evaluated: none queued, running or cancelled
    assert len(statuses) == trials and not {"queued", "running", "cancelled"} & set(statuses), statuses
    assert "stopped: trial budget" in out
    print(f"\nREADME command 1 in a fresh clone: {wall:.0f} s, {statuses.count('keep')} keep(s)")
