"""fake-prepared: a small task prepared like the published ones, from a loopback server.

Its recipe (upstream/train.py), public inputs (a size + MD5 source) and hidden labels (a
Hugging Face Hub file) are fetched by `prepare`; `build` patches the recipe and links the data
into public/ and hidden/. `serve(server)` puts the sources on a `tests.tasks.loopback.Loopback`;
`TASK` has no server until a test sets `TASK = with_server(url)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tasks._common import RecipeTask
from tasks._prepare import Plan, Source, prepared_dirs, task_root
from tasks.base import DataDirs, Limits, Measurements, Metric, Phase, Resources, RunPlan, Verdict
from tests.tasks.loopback import COMMIT, Loopback

NAME = "fake-prepared"
HF_REPO = "fixtures/fake-prepared"
RECIPE = b"""\
import json, os
xs = json.load(open(os.path.join(os.environ["AR_DATA"], "inputs.json")))
json.dump([x % 2 for x in xs], open("preds.json", "w"))
"""
INPUTS = json.dumps(list(range(300))).encode()
LABELS = json.dumps({"labels": [x % 2 for x in range(300)]}).encode()
PATCH = b"# patched for the harness\n"


def serve(server: Loopback) -> None:
    server.add("train.py", RECIPE)
    server.add("inputs.json", INPUTS)
    server.add_hf(HF_REPO, "labels.json", LABELS, revision=COMMIT)


def build(root: Path) -> None:
    """Patch the recipe, link the data into public/ and hidden/; swap each dir in by a rename."""
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    for sub in ("public", "hidden", "recipe"):
        (tmp / sub).mkdir()
    os.link(root / "downloads" / "inputs.json", tmp / "public" / "inputs.json")
    os.link(root / "downloads" / "labels.json", tmp / "hidden" / "labels.json")
    (tmp / "recipe" / "train.py").write_bytes((root / "upstream" / "train.py").read_bytes() + PATCH)
    for sub in ("public", "hidden", "recipe"):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
        os.replace(tmp / sub, root / sub)
    tmp.rmdir()


@dataclasses.dataclass(frozen=True)
class FakePreparedTask(RecipeTask):
    base_url: str = ""

    def preparation(self) -> Plan:
        sources = (
            Source("upstream/train.py", url=f"{self.base_url}/files/train.py", sha256=hashlib.sha256(RECIPE).hexdigest()),
            Source("downloads/inputs.json", url=f"{self.base_url}/files/inputs.json", size=len(INPUTS),
                   md5=hashlib.md5(INPUTS).hexdigest()),
            Source("downloads/labels.json", hf_repo=HF_REPO, hf_file="labels.json", hf_revision=COMMIT,
                   sha256=hashlib.sha256(LABELS).hexdigest()),
        )
        return Plan(sources, build, download_bytes=len(RECIPE) + len(INPUTS) + len(LABELS),
                    built_bytes=len(RECIPE) + len(PATCH), notes="Fixture data: public domain, for tests.")

    def recipe_dir(self) -> Path:
        return task_root(self.name) / "recipe"

    def prepare_data(self, root: Path) -> DataDirs:
        return prepared_dirs(self.name, self.preparation())

    def hidden_sources(self) -> list[Path]:
        return [task_root(self.name)]

    def finalize(self, m: Measurements) -> Verdict:
        acc = float(m.scorer.get("accuracy", 0.0))
        walls = m.wall_s.get("train", [])
        score = sum(walls) / len(walls) if walls else None
        status = "valid" if acc == 1.0 else "disqualified"
        return Verdict(status=status, score=score, metrics={"accuracy": acc})


TASK = FakePreparedTask(
    name=NAME, description="a task prepared from a loopback server (tests)", folder=Path(__file__).parent,
    editable=("train.py",), entrypoint="train.py", metric=Metric(name="train_s", unit="s"),
    limits=Limits(phase_budgets_s={"smoke": 20.0, "train": 20.0, "score": 20.0}),
    run_plan=RunPlan(phases=(Phase(name="train", argv=("{python}", "train.py"), per_seed=True,
                                   outputs=("preds.json",)),), seeds=1),
    resources=Resources(gpus=0), calibration_seeds=1,
)


def with_server(url: str) -> FakePreparedTask:
    return dataclasses.replace(TASK, base_url=url)
