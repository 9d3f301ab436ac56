"""One call cannot exhaust memory or reach the database out of range (issue 8, item 9).

Every integer argument is bounded in its schema, an edit's result size is computed before the
result is built, file maps and archives refuse a path that is both a file and a folder, and
archives are counted member by member (folders too) and read as a stream.
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from servers.app._archive import TreeLimits, write_archive, write_files
from servers.evaluator import build_evaluator
from servers.exceptions import WorkspaceLimitError, WorkspacePathError
from servers.app.jobs import EvaluationJobs
from servers.app.runtime import SearchRuntime
from servers.suite import SERVERS, build_suite
from servers.app.workspace import Workspace, WorkspaceLimits
from tasks.registry import get_task
from tests.servers.conftest import TASK, standalone_jobs

HUGE = 2**63


def integer_params(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, prop in schema.get("properties", {}).items():
        for sub in prop.get("anyOf", [prop]):
            if sub.get("type") == "integer":
                out[name] = sub
    return out


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    with standalone_jobs(tmp_path / "evaluator") as svc:
        yield svc


async def test_every_integer_argument_is_bounded_and_huge_values_get_clear_errors(
    rt: SearchRuntime, service: EvaluationJobs,
) -> None:
    unbounded, unclear = [], []
    for app in (build_suite(rt, "opt", servers=SERVERS), build_evaluator(service)):
        async with Client(app) as c:
            for tool in await c.list_tools():
                for name, sub in integer_params(tool.input_schema).items():
                    if "minimum" not in sub or "maximum" not in sub or sub["maximum"] >= 2**63:
                        unbounded.append(f"{tool.name}.{name}")
                    res = await c.call_tool(tool.name, {name: HUGE}, raise_on_error=False)
                    if not res.is_error or res.content[0].text.startswith("Error calling tool"):
                        unclear.append(f"{tool.name}.{name}: {res.content[0].text[:80]}")
    assert unbounded == [] and unclear == []


async def test_exp_ids_at_the_bound_are_not_found_not_crashes(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect("opt") as c:
        res = await c.call_tool("blackboard_get_trial", {"exp_id": 2**31 - 1}, raise_on_error=False)
        page = await c.call_tool("blackboard_list_trials", {"offset": 2**31 - 1}, raise_on_error=False)
    text = res.content[0].text
    assert res.is_error and "2147483647" in text and not text.startswith("Error calling tool")
    assert not page.is_error and page.structured_content["trials"] == []


def test_replace_all_checks_the_size_before_building_the_result(rt: SearchRuntime, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text("a" * 5_000)
    ws = Workspace(root, ("train.py",), rt.snapshots, WorkspaceLimits(max_file_bytes=10_000))
    tracemalloc.start()
    try:
        with pytest.raises(WorkspaceLimitError, match="would be 25000000 bytes"):
            ws.edit("train.py", "a", "b" * 5_000, replace_all=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the 25 MB result was never built
    assert (root / "train.py").read_text() == "a" * 5_000


def test_an_edit_that_fits_still_applies(rt: SearchRuntime, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text("é-a-a\n")
    ws = Workspace(root, ("train.py",), rt.snapshots, WorkspaceLimits(max_file_bytes=9))
    assert ws.edit("train.py", "a", "ü", replace_all=True).bytes == 9  # "é-ü-ü\n" in UTF-8
    with pytest.raises(WorkspaceLimitError, match="would be 10 bytes"):
        ws.edit("train.py", "\n", "\n\n", replace_all=False)


@pytest.mark.parametrize("files", [{"a/b": "x", "a": "y"}, {"a": "y", "a/b": "x"}, {"a/b/c": "x", "a/b": "y"}])
def test_file_maps_refuse_a_path_that_is_both_file_and_folder(tmp_path: Path, files: dict[str, str]) -> None:
    with pytest.raises(WorkspacePathError, match="both a file and a folder"):
        write_files(tmp_path / "t", files)


def tar_b64(entries: list[tuple[str, bytes | None]], compress: bool = True) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode()


def test_archives_refuse_a_path_that_is_both_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkspacePathError, match="both a file and a folder"):
        write_archive(tmp_path / "t", tar_b64([("a/b", b"x"), ("a", b"y")]))
    with pytest.raises(WorkspacePathError, match="both a file and a folder"):
        write_archive(tmp_path / "u", tar_b64([("a", b"y"), ("a/", None)]))


def test_archive_directory_entries_count_as_members(tmp_path: Path) -> None:
    lim = TreeLimits(max_files=5, max_members=10)
    dirs: list[tuple[str, bytes | None]] = [(f"d{i}", None) for i in range(20)]
    with pytest.raises(WorkspaceLimitError, match="more than 10 entries"):
        write_archive(tmp_path / "t", tar_b64([*dirs, ("train.py", b"x")]), lim)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(20):
            zf.writestr(f"d{i}/", b"")
        zf.writestr("train.py", b"x")
    with pytest.raises(WorkspaceLimitError, match="more than 10 entries"):
        write_archive(tmp_path / "z", base64.b64encode(buf.getvalue()).decode(), lim)
    assert write_archive(tmp_path / "ok", tar_b64([("d/", None), ("d/train.py", b"x")]), lim) == ["d/train.py"]


def long_name_bomb(size: int) -> str:
    """A gzip'd tar whose first header announces a GNU long name of `size` bytes (zeros)."""
    header = bytearray(512)
    header[0:13] = b"././@LongLink"
    header[100:108] = b"0000644\0"
    header[124:136] = f"{size:011o}\0".encode()
    header[156:157] = b"L"
    header[257:263] = b"ustar "
    header[263:265] = b" \0"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(bytes(header))
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            gz.write(chunk)
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.timeout(30)
def test_archives_are_read_as_a_bounded_stream(tmp_path: Path) -> None:
    bomb = long_name_bomb(200 << 20)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(WorkspaceLimitError, match="unpacks to more than"):
            write_archive(tmp_path / "t", bomb, TreeLimits(max_total_bytes=4_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000  # not the 200 MB the header announced


async def test_evaluate_refuses_file_and_folder_of_one_name(service: EvaluationJobs, tmp_path: Path) -> None:
    async with Client(build_evaluator(service)) as c:
        res = await c.call_tool("evaluate", {"files": {"a/b": "x", "a": "y"}}, raise_on_error=False)
    assert res.is_error and "both a file and a folder" in res.content[0].text
    assert not any((tmp_path / "evaluator").rglob("a"))
