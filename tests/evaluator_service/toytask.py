"""Small tasks implementing the `Task` protocol, so evaluator tests need no real task.

`ToyTask` is a stdlib-only prediction task: the recipe reads `/data/inputs.json` and writes
`preds.json`; the scorer compares it with `/hidden/labels.json` (which holds a canary string)
and reports accuracy; `finalize` scores the mean train wall time, gated on accuracy.
`ChatTask` is an interactive task: the artifact answers queries with probability vectors and
the scorer disqualifies unnormalised answers.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from pathlib import Path

from tasks.base import (
    DataDirs,
    InteractiveEval,
    Limits,
    Measurements,
    Metric,
    Phase,
    PreflightResult,
    Resources,
    Role,
    RunPlan,
    Verdict,
    syntax_errors,
)

CANARY = "HIDDEN-CANARY-7f3a9c"
INPUTS = list(range(20))
LABELS = [x % 2 for x in INPUTS]

GOOD_RECIPE = """\
import json, os
xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
json.dump([x % 2 for x in xs], open("preds.json", "w"))
print("done seed", os.environ["AR_SEED"])
"""

SCORER = """\
import json, os, pathlib
out = pathlib.Path(os.environ["AR_OUTPUTS"])
hidden = json.loads(pathlib.Path(os.environ["AR_HIDDEN"], "labels.json").read_text())
labels = hidden["labels"]
accs = []
for i in range(int(os.environ["AR_SEEDS"])):
    p = out / "train" / str(i) / "preds.json"
    try:
        preds = json.loads(p.read_text())
    except (OSError, ValueError):
        preds = []
    accs.append(sum(1 for a, b in zip(preds, labels) if a == b) / len(labels))
result = {"accuracy": sum(accs) / len(accs), "per_seed": accs}
pathlib.Path(os.environ["AR_RESULT"]).write_text(json.dumps(result))
"""


class ToyTask:
    """A configurable stdlib-only task; files are written under `root`."""

    name = "toy"
    description = "predict parity"
    entrypoint = "recipe.py"
    metric = Metric(name="train_s", unit="s", lower_is_better=True)
    calibration_seeds = 2

    def __init__(self, root: Path, recipe: str = GOOD_RECIPE, *, files: dict[str, str] | None = None,
                 budgets: dict[str, float] | None = None, smoke: bool = False, seeds: int = 1,
                 limits: dict | None = None, scorer: str = SCORER, hidden_sources: list[Path] | None = None,
                 outputs: tuple[str, ...] = ("preds.json",), interactive: InteractiveEval | None = None,
                 torchrun: bool = False, nproc: int = 1, gpus: int = 0, min_accuracy: float = 0.9,
                 name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or type(self).name
        self.editable = tuple(sorted({"recipe.py", *(files or {})}))
        self.limits = Limits(phase_budgets_s=budgets or {"smoke": 5.0, "train": 5.0, "eval": 5.0},
                             gates={"min_accuracy": min_accuracy}, **(limits or {}))
        phases = [Phase(name="train", argv=("{python}", "recipe.py"), per_seed=True, outputs=outputs,
                        torchrun=torchrun)]
        if smoke:
            phases.insert(0, Phase(name="smoke", argv=("{python}", "recipe.py"), kind="smoke"))
        self.run_plan = RunPlan(phases=tuple(phases), seeds=seeds, interactive_eval=interactive)
        self.resources = Resources(gpus=gpus, nproc_per_trial=nproc)
        self._hidden_sources = hidden_sources or []
        recipe_dir = self.root / "recipe"
        recipe_dir.mkdir(parents=True, exist_ok=True)
        (recipe_dir / "recipe.py").write_text(textwrap.dedent(recipe))
        for fname, text in (files or {}).items():
            (recipe_dir / fname).write_text(textwrap.dedent(text))
        scorer_dir = self.root / "scorer"
        scorer_dir.mkdir(parents=True, exist_ok=True)
        (scorer_dir / "score.py").write_text(textwrap.dedent(scorer))

    def recipe_dir(self) -> Path:
        return self.root / "recipe"

    def roster(self) -> list[Role]:
        return [Role(name="opt", scope="everything")]

    def knowledge(self) -> dict[str, str]:
        return {}

    def prepare_data(self, root: Path) -> DataDirs:
        public, hidden = root / "public", root / "hidden"
        public.mkdir(parents=True, exist_ok=True)
        hidden.mkdir(parents=True, exist_ok=True)
        (public / "inputs.json").write_text(json.dumps(INPUTS))
        (hidden / "labels.json").write_text(json.dumps({"labels": LABELS, "canary": CANARY}))
        return DataDirs(public=public, hidden=hidden)

    def hidden_sources(self) -> list[Path]:
        return list(self._hidden_sources)

    def preflight(self, tree: Path) -> PreflightResult:
        errors = syntax_errors(tree, self.editable)
        if errors:
            return PreflightResult(ok=False, status="preflight_crash", message="; ".join(errors))
        return PreflightResult(ok=True)

    def scorer_argv(self) -> tuple[str, ...]:
        return ("{python}", "{scorer_dir}/score.py")

    def scorer_dir(self) -> Path:
        return self.root / "scorer"

    def finalize(self, m: Measurements) -> Verdict:
        acc = m.scorer.get("accuracy")
        if acc is None:
            return Verdict(status="crash", failure=str(m.scorer.get("error", "no accuracy")))
        metrics = {"accuracy": acc, "train_s": statistics.fmean(m.wall_s["train"])}
        if acc < self.limits.gates["min_accuracy"]:
            return Verdict(status="disqualified", metrics=metrics, failure=f"accuracy {acc:.3f} below the gate")
        return Verdict(status="valid", score=metrics["train_s"], metrics=metrics)


ARTIFACT_RECIPE = """\
import os
os.makedirs("artifact", exist_ok=True)
open("artifact/answer.py", "w").write(open("answer_src.py").read())
open("artifact/weights.bin", "wb").write(b"w" * int(os.environ.get("WEIGHT_BYTES", "100")))
"""

GOOD_ANSWER = """\
import sys
for line in sys.stdin:
    n = int(line)
    print(" ".join(["%r" % (1.0 / n)] * n), flush=True)
"""

CHAT_SCORER = """\
import json, os, sys
answers, normalised = 0, True
for n in (2, 3, 4, 5):
    print(n, flush=True)
    line = sys.stdin.readline()
    if not line:
        print(json.dumps({"error": "artifact closed the pipe"}), file=sys.stderr)
        sys.exit(0)
    probs = [float(x) for x in line.split()]
    answers += 1
    normalised = normalised and len(probs) == n and abs(sum(probs) - 1.0) < 1e-6
sys.stdout.close()
print(json.dumps({"answers": answers, "normalised": normalised}), file=sys.stderr)
"""


class ChatTask(ToyTask):
    """Interactive: a main phase builds `artifact/`, the eval queries it through pipes."""

    name = "chat"

    def __init__(self, root: Path, answer: str = GOOD_ANSWER, *, cap: int | None = 10_000,
                 weight_bytes: int = 100, budgets: dict[str, float] | None = None) -> None:
        ie = InteractiveEval(artifact_dir="artifact", argv=("{python}", "answer.py"))
        super().__init__(root, ARTIFACT_RECIPE, files={"answer_src.py": answer}, scorer=CHAT_SCORER,
                         outputs=("artifact",), interactive=ie, budgets=budgets,
                         limits={"artifact_cap_bytes": cap})
        self.run_plan = self.run_plan.model_copy(update={"phases": tuple(
            p.model_copy(update={"env": {"WEIGHT_BYTES": str(weight_bytes)}}) for p in self.run_plan.phases)})

    def finalize(self, m: Measurements) -> Verdict:
        if "error" in m.scorer:
            return Verdict(status="crash", failure=m.scorer["error"])
        if not m.scorer.get("normalised"):
            return Verdict(status="disqualified", failure="unnormalised probabilities",
                           metrics={"answers": m.scorer.get("answers", 0)})
        return Verdict(status="valid", score=float(m.artifact_bytes or 0), metrics={"answers": m.scorer["answers"]})


_CLI_TASKS: dict[str, ToyTask] = {}


def __getattr__(name: str) -> ToyTask:
    """`tests.evaluator_service.toytask:CLI_TOY` / `:CLI_CRASH` for `get_task` (files in a temp dir)."""
    recipes = {"CLI_TOY": GOOD_RECIPE, "CLI_CRASH": "raise ValueError('bad recipe')\n"}
    if name not in recipes:
        raise AttributeError(name)
    if name not in _CLI_TASKS:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="ar-cli-toy-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _CLI_TASKS[name] = ToyTask(root, recipes[name], seeds=2, name="tests.evaluator_service.toytask:" + name)
    return _CLI_TASKS[name]
