"""Fuzz every tool's arguments (hypothesis): no unhandled exception, no write outside the workspace.

Arguments are drawn from each tool's own input schema, mixed with hostile values (escaping
paths, huge and control-laden strings, NaN, wrong types, unknown keys). A result may be an
error, but only an actionable one: a masked internal error ("Error calling tool …") fails.
Everything under the test's directory except the caller's own workspace is hashed before and
after; the only other writes allowed are the lineage database and the snapshot blobs that a
submission legitimately adds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers.app.runtime import SearchRuntime
from servers.suite import build_suite
from tests.servers.conftest import make_search

HOSTILE_PATHS = [
    "train.py",
    "../opt/train.py",
    "/etc/passwd",
    "..",
    ".",
    "./train.py",
    "a/../../x",
    "~/.ssh/id",
    "train.py/../../tokens.json",
    "C:\\x",
    "x\x00y",
    "__pycache__/x.py",
    "new.py",
    "x" * 300,
    "\u202e.py",
]
WEIRD_TEXT = st.one_of(
    st.sampled_from(HOSTILE_PATHS),
    st.sampled_from(HOSTILE_PATHS),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.just("EPOCHS = 30"),
    st.just("import"),
    st.just(""),
)
NUMBERS = st.one_of(st.integers(-3, 6), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True))
ANY = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    WEIRD_TEXT,
    st.lists(WEIRD_TEXT, max_size=3),
    st.dictionaries(WEIRD_TEXT, WEIRD_TEXT, max_size=3),
)


def typed_for(sub: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of the schema's type and range (paths and texts still hostile half the time)."""
    kind = sub.get("type")
    if kind == "string":
        return st.one_of(WEIRD_TEXT, st.sampled_from(["train.py", "EPOCHS = 30", "EPOCHS = 3", "LR", "KNOWLEDGE.md"]))
    if kind == "integer":
        low = sub.get("minimum", -3)
        return st.integers(low, min(sub.get("maximum", low + 60), low + 60))
    if kind == "number":
        return st.floats(-5, 60)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        enum = sub.get("items", {}).get("enum")
        return st.lists(st.sampled_from(enum) if enum else WEIRD_TEXT, max_size=3)
    if kind == "object":
        return st.dictionaries(WEIRD_TEXT, WEIRD_TEXT, max_size=3)
    return st.none()


def value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Usually a value that fits `schema`; one time in five anything at all."""
    typed = st.one_of(*(typed_for(sub) for sub in schema.get("anyOf", [schema])))
    return st.one_of(typed, typed, typed, typed, ANY)


def args_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    typed = st.fixed_dictionaries(
        {k: value_for(v) for k, v in props.items() if k in required},
        optional={k: value_for(v) for k, v in props.items() if k not in required},
    )
    return st.one_of(typed, typed, typed, typed, st.dictionaries(WEIRD_TEXT, ANY, max_size=2))


def tree_digest(root: Path, skip: tuple[Path, ...]) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip) or not path.is_file():
            continue
        out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def fuzz_search(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("fuzz")
    rt = SearchRuntime.open(make_search(root / "state"), workers=0)
    yield root, rt
    rt.close()


SERVERS = ("blackboard", "snapshot", "submission")
WAITS = ("submission_wait_trial", "get_job")


def draw(schema: dict[str, Any], n: int) -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(args=args_for(schema))
    def collect(args: dict[str, Any]) -> None:
        drawn.append(args)

    collect()
    return drawn


async def fuzz(client: Client, n: int, after_call: Any = None) -> list[str]:
    """Call every tool with `n` drawn argument sets; return the masked (unhandled) failures."""
    failures = []
    for tool in await client.list_tools():
        for args in draw(tool.input_schema, n):
            if tool.name in WAITS:
                args = {**args, "timeout_s": 0}
            res = await client.call_tool(tool.name, args, raise_on_error=False)
            text = res.content[0].text if res.content else ""
            if res.is_error and text.startswith("Error calling tool"):
                failures.append(f"{tool.name}({args!r}) -> {text}")
            if after_call is not None:
                await after_call()
    return failures


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_fuzz_every_tool(fuzz_search) -> None:  # type: ignore[no-untyped-def]
    root, rt = fuzz_search
    state = rt.state.path
    skip = (
        state / "workspaces" / "opt",
        state / "snapshots",
        state / "lineage.db",
        state / "lineage.db-wal",
        state / "lineage.db-shm",
    )
    async with Client(build_suite(rt, "opt", servers=SERVERS)) as client:
        before = tree_digest(root, skip)
        failures = await fuzz(client, 60)
        after = tree_digest(root, skip)
    assert failures == []
    assert after == before
    assert all(
        (state / "workspaces" / "opt").resolve() in p.resolve().parents
        for p in (state / "workspaces" / "opt").rglob("*")
    )


def test_schema_strategy_draws_hostile_values() -> None:
    seen = draw({"properties": {"path": {"type": "string"}, "n": {"type": "integer"}}}, 200)
    paths = [a["path"] for a in seen if isinstance(a.get("path"), str)]
    assert any(p.startswith(("..", "/", "~")) for p in paths) and "train.py" in paths
    assert any(not isinstance(a.get("n", 0), int) for a in seen)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(900)
async def test_fuzz_evaluator_tools(tmp_path: Path) -> None:
    from servers.evaluator import build_evaluator
    from tests.servers.conftest import standalone_jobs

    async def cancel_all() -> None:
        for job in service.list("local"):
            if not job.finished:
                service.cancel("local", job.job_id)

    before = tree_digest(tmp_path, (tmp_path / "evaluator",))
    with standalone_jobs(tmp_path / "evaluator") as service:
        async with Client(build_evaluator(service)) as client:
            failures = await fuzz(client, 25, cancel_all)
    assert failures == []
    assert tree_digest(tmp_path, (tmp_path / "evaluator",)) == before
    assert (
        not list((tmp_path / "evaluator" / "submissions").glob("*/*"))
        if (tmp_path / "evaluator" / "submissions").exists()
        else True
    )
