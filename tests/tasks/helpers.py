"""Run task recipes and scorers as real subprocesses, without the sandbox.

The sandbox binds fixed paths (/data, /hidden, /outputs, /result); recipes and scorers also
read them from the AR_* variables, which is what lets these helpers run them anywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tasks.base import Task


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment like the sandbox's (no secrets), plus `extra`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1",
           "AR_THREADS": "2", "AR_SEED": "0", "AR_SMOKE": "0"}
    env.update(extra)
    return env


def copy_recipe(task: Task, dest: Path) -> Path:
    """A fresh scratch copy of the task's starting recipe."""
    shutil.copytree(task.recipe_dir(), dest)
    return dest


def run_phase(trial: Path, data: Path, seed: int = 0, smoke: bool = False,
              timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run `python train.py` in `trial` like a sandboxed phase.

    Returns (process, wall seconds, CPU seconds of the process and the children it waited for).
    """
    env = base_env(AR_DATA=str(data), AR_SEED=str(seed), AR_SMOKE="1" if smoke else "0",
                   AR_PHASE="smoke" if smoke else "train", HOME=str(trial))
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py"], cwd=trial, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def run_scorer(task: Task, hidden: Path, outputs: Path, result_dir: Path,
               seeds: str = "", timeout: float = 60) -> dict:
    """Run the task's scorer script (non-interactive) and return its JSON result."""
    result = result_dir / "score.json"
    env = base_env(AR_HIDDEN=str(hidden), AR_OUTPUTS=str(outputs), AR_RESULT=str(result),
                   AR_SEEDS=seeds)
    proc = subprocess.run([sys.executable, str(task.scorer_dir() / "score.py")], cwd=result_dir,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(result.read_text())


def run_interactive(task: Task, hidden: Path, artifact_argv: list[str], artifact_cwd: Path,
                    result_dir: Path, timeout: float = 60) -> tuple[dict, float]:
    """Wire the task's scorer and an artifact together by two pipes, like the evaluator.

    Returns (scorer JSON, wall seconds of the exchange).
    """
    result = result_dir / "score.json"
    to_art_r, to_art_w = os.pipe()
    from_art_r, from_art_w = os.pipe()
    env = base_env(AR_HIDDEN=str(hidden), AR_RESULT=str(result), AR_INTERACTIVE="1",
                   AR_EVAL_TIMEOUT_S=str(timeout))
    t0 = time.perf_counter()
    with open(result_dir / "artifact.log", "wb") as log, open(result_dir / "scorer.log", "wb") as slog:
        art = subprocess.Popen(artifact_argv, cwd=artifact_cwd, stdin=to_art_r, stdout=from_art_w,
                               stderr=log, env=base_env(HOME=str(artifact_cwd)))
        scorer = subprocess.Popen([sys.executable, str(task.scorer_dir() / "score.py")],
                                  cwd=result_dir, stdin=from_art_r, stdout=to_art_w, stderr=slog,
                                  env=env)
        for fd in (to_art_r, to_art_w, from_art_r, from_art_w):
            os.close(fd)
        try:
            scorer.wait(timeout=timeout + 10)
            art.wait(timeout=2)  # the scorer is done: the artifact gets a short grace period
        except subprocess.TimeoutExpired:
            pass
        finally:
            for p in (art, scorer):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    wall = time.perf_counter() - t0
    assert scorer.returncode == 0, (result_dir / "scorer.log").read_text()
    return json.loads(result.read_text()), wall


def tree_bytes(path: Path) -> int:
    """The artifact's size as the evaluator counts it (files, names, a cost per entry)."""
    from evaluator_service._files import artifact_size

    return artifact_size(path)[0]
