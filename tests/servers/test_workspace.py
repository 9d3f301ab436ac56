"""servers/app/workspace.py: path checks, exact edits, limits, diff and rebase (plain sync code)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lineage.models import NoiseMargin, SearchConfig
from lineage.state import StateDir
from servers.exceptions import EditError, WorkspaceError, WorkspaceLimitError, WorkspacePathError
from servers.app.workspace import Workspace, WorkspaceLimits, check_relpath

RECIPE = "import os\n\nLR = 0.1\nEPOCHS = 3\n\n\ndef main():\n    print(LR)\n    print(LR)\n"


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    cfg = SearchConfig(task="t", roster=("a",), margin=NoiseMargin())
    s = StateDir.create(tmp_path / "state", cfg)
    yield s
    s.close()


def make_ws(state: StateDir, tmp_path: Path, limits: WorkspaceLimits | None = None) -> Workspace:
    src = tmp_path / "recipe"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text(RECIPE)
    (src / "pkg" / "util.py").write_text("X = 1\n")
    (src / "README.md").write_text("read me\n")
    digest = state.snapshots.put_tree(src)
    ws = Workspace(state.path / "workspaces" / "a", ("train.py", "pkg"), state.snapshots, limits or WorkspaceLimits())
    ws.rebase(digest, 0)
    return ws


@pytest.mark.parametrize(
    "bad",
    [
        "/etc/passwd",
        "../a.json",
        "pkg/../../x",
        "~/x",
        "C:/x",
        "a\\b",
        "a\x00b",
        "a\nb",
        "",
        "  ",
        ".",
        "__pycache__/x.py",
        "x.pyc",
        ".git/config",
        "\ud800",
    ],
)
def test_check_relpath_rejects_escapes_and_noise(bad: str) -> None:
    with pytest.raises(WorkspacePathError):
        check_relpath(bad)


def test_check_relpath_normalises_dot_components() -> None:
    assert check_relpath("./pkg//util.py") == "pkg/util.py"


def test_rebase_seeds_files_and_origin(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    assert ws.origin().parent_exp == 0
    listing = ws.listing()
    assert [(f.path, f.editable, f.modified) for f in listing.files] == [
        ("README.md", False, False),
        ("pkg/util.py", True, False),
        ("train.py", True, False),
    ]
    assert not (ws.root / "a.json").exists() and ws.meta_path.parent == ws.root.parent


def test_read_pages_by_lines(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    part = ws.read("train.py", offset=3, limit=2)
    assert (part.content, part.first_line, part.last_line, part.total_lines, part.next_offset) == (
        "LR = 0.1\nEPOCHS = 3\n",
        3,
        4,
        9,
        5,
    )
    assert ws.read("train.py", offset=8, limit=5).next_offset is None


def test_read_bounds_characters(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path, WorkspaceLimits(max_read_chars=12))
    part = ws.read("train.py", limit=100)
    assert part.content == "import os\n\n" and part.next_offset == 3


def test_edit_replaces_exactly_once(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    result = ws.edit("train.py", "LR = 0.1", "LR = 0.2")
    assert (result.replacements, result.first_line) == (1, 3)
    assert "LR = 0.2" in (ws.root / "train.py").read_text()
    assert [f.path for f in ws.list_files() if f.modified] == ["train.py"]


def test_edit_absent_text_says_what_to_do(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    with pytest.raises(EditError, match="not found in train.py.*read_workspace_file"):
        ws.edit("train.py", "LR = 0.3", "LR = 0.2")
    with pytest.raises(EditError, match="differs only in leading/trailing whitespace"):
        ws.edit("train.py", "  LR = 0.1  ", "LR = 0.2")


def test_edit_ambiguous_text_names_lines(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    with pytest.raises(EditError, match=r"occurs 2 times in train.py \(lines 8, 9\).*replace_all"):
        ws.edit("train.py", "print(LR)", "print(LR * 2)")
    assert ws.edit("train.py", "print(LR)", "pass", replace_all=True).replacements == 2


@pytest.mark.parametrize("old,new,match", [("", "x", "empty"), ("LR", "LR", "identical")])
def test_edit_rejects_noop(state: StateDir, tmp_path: Path, old: str, new: str, match: str) -> None:
    ws = make_ws(state, tmp_path)
    with pytest.raises(EditError, match=match):
        ws.edit("train.py", old, new)


def test_writes_only_editable_paths(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    assert ws.write("pkg/new.py", "Y = 2\n").created
    with pytest.raises(WorkspacePathError, match="outside the task's editable paths"):
        ws.write("README.md", "x")
    with pytest.raises(WorkspacePathError, match="outside the task's editable paths"):
        ws.edit("README.md", "read", "write")
    with pytest.raises(WorkspacePathError, match="is a folder"):
        ws.write("pkg", "x")


def test_size_limits_are_stated(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path, WorkspaceLimits(max_file_bytes=200, max_total_bytes=300, max_files=4))
    with pytest.raises(WorkspaceLimitError, match="at most 200"):
        ws.write("train.py", "x" * 201)
    ws.write("pkg/b.py", "x" * 150)
    with pytest.raises(WorkspaceLimitError, match="limit is 300"):
        ws.write("pkg/c.py", "x" * 100)
    with pytest.raises(WorkspaceLimitError, match="limit of 4 files"):
        ws.write("pkg/d.py", "")
    with pytest.raises(WorkspaceLimitError, match="1..2000 lines"):
        ws.read("train.py", limit=5000)


def test_symlinks_are_never_followed(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    os.symlink(outside, ws.root / "pkg" / "link.py")
    os.symlink(tmp_path, ws.root / "pkg" / "dirlink")
    for path in ("pkg/link.py", "pkg/dirlink/outside.py"):
        with pytest.raises(WorkspacePathError, match="symlink"):
            ws.read(path)
        with pytest.raises(WorkspacePathError, match="symlink"):
            ws.write(path, "X = 2\n")
    assert outside.read_text() == "SECRET = 1\n"
    assert "pkg/link.py" not in [f.path for f in ws.list_files()]


def test_unicode_errors_are_agent_errors(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    with pytest.raises(WorkspaceError, match="not valid Unicode"):
        ws.write("train.py", "\ud800")
    (ws.root / "pkg" / "bin.py").write_bytes(b"\x00\x01")
    with pytest.raises(WorkspacePathError, match="binary"):
        ws.read("pkg/bin.py")


def test_diff_against_origin_and_rebase_back(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path)
    base = ws.origin().snapshot
    ws.edit("train.py", "EPOCHS = 3", "EPOCHS = 4")
    ws.write("pkg/new.py", "Z = 3\n")
    d = ws.diff()
    assert d.files_changed == ["pkg/new.py", "train.py"]
    assert "-EPOCHS = 3\n+EPOCHS = 4\n" in d.diff and "+++ b/pkg/new.py" in d.diff
    digest = ws.snapshot()
    assert digest != base
    ws.rebase(base, 0)
    assert ws.diff().files_changed == [] and not (ws.root / "pkg" / "new.py").exists()
    assert sorted(p.name for p in ws.root.parent.iterdir()) == ["a", "a.json"]


def test_diff_is_bounded(state: StateDir, tmp_path: Path) -> None:
    ws = make_ws(state, tmp_path, WorkspaceLimits(max_diff_chars=300))
    ws.write("pkg/big.py", "".join(f"V{i} = {i}\n" for i in range(200)))
    ws.edit("train.py", "EPOCHS = 3", "EPOCHS = 5")
    d = ws.diff()
    assert d.truncated and len(d.diff) < 500 and "not shown: pkg/big.py" in d.diff


def test_exported_members() -> None:
    import prompts
    import servers

    assert servers.__all__ == [
        "SERVERS",
        "SPECIALIST_SERVERS",
        "Baseline",
        "InitResult",
        "SearchRuntime",
        "build_server",
        "build_suite",
        "init_search",
        "roster_names",
    ]
    assert all(hasattr(servers, name) for name in servers.__all__)
    assert prompts.__all__ == ["ARMS", "render_brief", "render_session_start"]
