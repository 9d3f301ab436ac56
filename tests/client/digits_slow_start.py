"""digits-speedrun from a slower start: the same task, its recipe training 40 epochs of batches of 8.

For the test that a real improvement is confirmed and kept (tests/client/test_digits_search.py).
The score counts the whole process, and on some machines interpreter start and `import torch`
are most of the default recipe's CPU time and most of its run-to-run noise, so no edit of the
recipe gains much more than the noise margin there (CI once measured a baseline of 5.44 CPU-s
with a spread of 0.63, against 0.58 gained by 8 epochs of batches of 64). Five times the
training steps of the default (30 epochs of batches of 32) make the training most of the time
on any machine, so the planted change gains several spreads wherever the suite runs; the task,
its scorer and its rules are the real ones.

Registry path: `tests.client.digits_slow_start:TASK`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from tasks.digits_speedrun.task import TASK as DIGITS
from tasks.digits_speedrun.task import DigitsSpeedrun

SLOW_START = (("EPOCHS = 30  #", "EPOCHS = 40  #"), ("BATCH_SIZE = 32  #", "BATCH_SIZE = 8  #"))


def _recipe() -> Path:
    """The task's recipe from the slower start, written once per content into the temp directory."""
    text = (DIGITS.recipe_dir() / "train.py").read_text()
    for old, new in SLOW_START:
        if old not in text:
            raise RuntimeError(f"digits-speedrun's recipe no longer has {old!r}: update {__name__}")
        text = text.replace(old, new)
    out = Path(tempfile.gettempdir()) / f"ar-digits-slow-start-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if (out / "train.py").is_file():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=".ar-digits-slow-start-"))
    (tmp / "train.py").write_text(text)
    os.chmod(tmp / "train.py", 0o644)
    os.chmod(tmp, 0o755)  # the sandbox reads it as an unprivileged user
    try:
        tmp.rename(out)
    except OSError:  # another process wrote the same recipe first
        shutil.rmtree(tmp)
    return out


class SlowStartDigits(DigitsSpeedrun):
    """digits-speedrun whose starting recipe trains 40 epochs of batches of 8."""

    def recipe_dir(self) -> Path:
        return _recipe()


TASK = SlowStartDigits(**{**{f.name: getattr(DIGITS, f.name) for f in dataclasses.fields(DIGITS)},
                          "name": "digits-speedrun-slow-start"})
