"""The evaluator server alone (no search): checked inputs, jobs with ids, real evaluations."""

from __future__ import annotations

import base64
import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from fastmcp import Client

from servers.evaluator import build_evaluator
from servers.app.jobs import EvaluationJobs
from tasks.registry import get_task
from tests.servers.conftest import TASK, standalone_jobs

RECIPE = (get_task(TASK).recipe_dir() / "train.py").read_text()
FAST = RECIPE.replace("EPOCHS = 30", "EPOCHS = 2")


def tar_b64(members: dict[str, bytes], link: tuple[str, str] | None = None) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tf.addfile(info)
    return base64.b64encode(buf.getvalue()).decode()


def zip_b64(members: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    with standalone_jobs(tmp_path / "evaluator") as svc:
        yield svc


async def call(client, name: str, args: dict | None = None):  # type: ignore[no-untyped-def]
    return await client.call_tool(name, args or {}, raise_on_error=False)


@pytest.mark.parametrize(
    "args,match",
    [
        ({}, "exactly one of"),
        ({"files": {"train.py": "x"}, "archive_b64": "eA=="}, "exactly one of"),
        ({"files": {"../train.py": "x"}}, "'..' is not allowed"),
        ({"files": {"/etc/x": "x"}}, "absolute paths"),
        ({"files": {}}, "no files given"),
        ({"archive_b64": "not base64!"}, "not valid base64"),
        ({"archive_b64": base64.b64encode(b"plain bytes").decode()}, "neither a readable tar nor a zip"),
        ({"archive_b64": tar_b64({"../evil.py": b"x"})}, "'..' is not allowed"),
        ({"archive_b64": tar_b64({"train.py": b"x"}, link=("data.py", "/etc/passwd"))}, "only regular files"),
        ({"archive_b64": zip_b64({"/abs.py": b"x"})}, "absolute paths"),
        ({"files": {"train.py": "x"}, "task": "another-task"}, "serves task 'digits-speedrun' only"),
    ],
)
async def test_evaluate_rejects_bad_inputs(service: EvaluationJobs, tmp_path: Path, args: dict, match: str) -> None:
    async with Client(build_evaluator(service)) as c:
        res = await call(c, "evaluate", args)
    assert res.is_error and match in res.content[0].text
    assert (
        not any((tmp_path / "evaluator" / "submissions").glob("*/*"))
        if (tmp_path / "evaluator" / "submissions").exists()
        else True
    )


async def test_jobs_are_private_and_ids_checked(service: EvaluationJobs) -> None:
    async with Client(build_evaluator(service)) as c:
        missing = await call(c, "get_job", {"job_id": "eva-99999", "timeout_s": 0})
        listed = (await call(c, "list_jobs")).structured_content
    assert missing.is_error and "no job 'eva-99999' of yours" in missing.content[0].text
    assert listed == {"result": []}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_evaluate_archive_then_wait_with_progress_and_cancel(service: EvaluationJobs) -> None:
    seen: list[str | None] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with Client(build_evaluator(service)) as c:
        t0 = time.monotonic()
        job = (
            await call(c, "evaluate", {"archive_b64": tar_b64({"./train.py": FAST.encode()}), "seeds": 1})
        ).structured_content
        doomed = (await call(c, "evaluate", {"files": {"train.py": FAST}, "seeds": 1})).structured_content
        assert time.monotonic() - t0 < 5 and job["state"] in ("queued", "running")
        cancelled = (await call(c, "cancel_job", {"job_id": doomed["job_id"]})).structured_content
        done = job
        while not done["finished"]:
            done = (
                await c.call_tool("get_job", {"job_id": job["job_id"], "timeout_s": 50}, progress_handler=on_progress)
            ).structured_content
        jobs = (await call(c, "list_jobs")).structured_content["result"]
    assert cancelled["state"] == "cancelled"
    assert done["state"] == "finished" and done["files"] == ["train.py"]
    assert done["outcome"]["status"] in ("valid", "disqualified") and done["outcome"]["timings"]["train"] > 0
    assert seen and seen[0].startswith(f"job {job['job_id']}")
    assert [j["job_id"] for j in jobs] == [job["job_id"], doomed["job_id"]]
