"""tiny-golf with a declared profile, for tests of profile selection (a dotted-path task)."""

from __future__ import annotations

import dataclasses

from tasks.base import Profile
from tasks.tiny_golf.task import TASK as _GOLF

SMALL = Profile(name="small", description="two seeds, a shorter train budget, no sliding eval",
                seeds=2, env={"SLIDING": "0"}, phase_budgets_s={"train": 30.0})
TASK = dataclasses.replace(_GOLF, profiles=(SMALL,))
