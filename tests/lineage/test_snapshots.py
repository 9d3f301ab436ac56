"""The content-addressed snapshot store, on a real SQLite file and a real blob directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lineage.exceptions import SnapshotError, SnapshotNotFoundError, SnapshotPathError
from lineage.models import SearchConfig
from lineage.snapshots import SnapshotStore, check_path
from lineage.sql import SqlLineageStore
from lineage.state import StateDir


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    sd = StateDir.create(tmp_path / "state", SearchConfig(task="toy"))
    yield sd
    sd.close()


@pytest.fixture
def snaps(state: StateDir) -> SnapshotStore:
    return state.snapshots


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def _blobs(snaps: SnapshotStore) -> list[Path]:
    return [p for p in (snaps.root / "blobs").rglob("*") if p.is_file()]


def test_put_tree_lists_and_reads_every_file(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"train.py": "print(1)\n", "lib/util.py": "X = 2\n"})
    snap = snaps.put_tree(src)
    assert [(e.path, e.size) for e in snaps.list_files(snap)] == [("lib/util.py", 6), ("train.py", 9)]
    assert snaps.read_file(snap, "lib/util.py") == b"X = 2\n"
    assert snaps.read_file(snap, "train.py", offset=6, limit=2) == b"1)"


def test_same_tree_gives_same_id_and_blobs_are_shared_across_snapshots(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"train.py": "a\n", "big.py": "x" * 5000})
    first = snaps.put_tree(src)
    assert snaps.put_tree(src) == first
    (src / "train.py").write_text("b\n")
    second = snaps.put_tree(src)
    assert second != first
    assert len(_blobs(snaps)) == 3  # big.py stored once, two versions of train.py
    assert snaps.put_files({"train.py": b"a\n", "big.py": b"x" * 5000}) == first


def test_put_tree_skips_caches_and_applies_include(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"a.py": "1", "__pycache__/a.cpython-311.pyc": b"\0", "b.pyc": b"\0",
                                 "data/x.txt": "x", ".git/HEAD": "ref"})
    assert [e.path for e in snaps.list_files(snaps.put_tree(src))] == ["a.py", "data/x.txt"]
    assert [e.path for e in snaps.list_files(snaps.put_tree(src, include=["*.py"]))] == ["a.py"]


def test_symlink_inside_is_stored_as_its_target_and_outside_is_refused(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"real.py": "R"})
    os.symlink("real.py", src / "alias.py")
    snap = snaps.put_tree(src)
    assert snaps.read_file(snap, "alias.py") == b"R"
    secret = _tree(tmp_path / "secret", {"key": "s3cret"})
    os.symlink(secret / "key", src / "leak")
    with pytest.raises(SnapshotPathError, match="outside the tree"):
        snaps.put_tree(src)


def test_directory_symlink_outside_is_refused(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"a.py": "1"})
    os.symlink(tmp_path, src / "up")
    with pytest.raises(SnapshotPathError, match="outside the tree"):
        snaps.put_tree(src)


def test_special_files_are_refused(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"a.py": "1"})
    os.mkfifo(src / "pipe")
    with pytest.raises(SnapshotPathError, match="not a regular file"):
        snaps.put_tree(src)


def test_size_and_count_limits_give_clear_errors(tmp_path: Path, state: StateDir) -> None:
    small = SnapshotStore(state.path / "snapshots", state.store, max_files=2, max_total_bytes=10)
    src = _tree(tmp_path / "w", {"a": "1", "b": "2", "c": "3"})
    with pytest.raises(SnapshotPathError, match="more than 2 files"):
        small.put_tree(src)
    with pytest.raises(SnapshotPathError, match="exceeds 10 bytes"):
        small.put_files({"a": b"x" * 11})
    with pytest.raises(SnapshotError, match="nothing to snapshot"):
        small.put_files({})


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../b", "a//b", "./a", "", "a\\b", "a\x00b"])
def test_traversal_paths_are_refused_everywhere(bad: str, snaps: SnapshotStore) -> None:
    snap = snaps.put_files({"a.py": b"1"})
    with pytest.raises(SnapshotPathError):
        check_path(bad)
    with pytest.raises(SnapshotPathError):
        snaps.read_file(snap, bad)
    with pytest.raises(SnapshotPathError):
        snaps.put_files({bad: b"x"})


def test_unknown_snapshot_and_unknown_path_are_told_apart(snaps: SnapshotStore) -> None:
    snap = snaps.put_files({"a.py": b"1"})
    with pytest.raises(SnapshotNotFoundError):
        snaps.list_files("0" * 64)
    with pytest.raises(SnapshotNotFoundError):
        snaps.read_file("0" * 64, "a.py")
    with pytest.raises(SnapshotPathError, match="not a file of snapshot"):
        snaps.read_file(snap, "b.py")


def test_diff_is_unified_per_file_and_lists_changes(snaps: SnapshotStore) -> None:
    a = snaps.put_files({"train.py": b"lr = 1\nepochs = 3\n", "gone.py": b"x\n", "same.py": b"s\n"})
    b = snaps.put_files({"train.py": b"lr = 2\nepochs = 3\n", "new.py": b"y\n", "same.py": b"s\n"})
    d = snaps.diff(a, b)
    assert d.files_changed == ["gone.py", "new.py", "train.py"]
    assert not d.truncated
    assert "--- a/train.py\n+++ b/train.py\n" in d.text
    assert "-lr = 1\n+lr = 2\n" in d.text
    assert "--- a/gone.py\n+++ /dev/null\n" in d.text
    assert "--- /dev/null\n+++ b/new.py\n" in d.text
    assert snaps.diff(a, a).text == ""


def test_diff_summarises_binary_files_and_mode_changes(snaps: SnapshotStore) -> None:
    a = snaps.put_files({"w.bin": b"\x00\x01", "run.sh": b"echo\n"})
    b = snaps.put_files({"w.bin": b"\x00\x02\x03", "run.sh": b"echo\n"}, modes={"run.sh": 0o755})
    d = snaps.diff(a, b)
    assert "binary file w.bin differs (2 -> 3 bytes)" in d.text
    assert "mode of run.sh: 644 -> 755" in d.text


def test_diff_is_bounded_and_says_what_it_left_out(snaps: SnapshotStore) -> None:
    old = {f"f{i:02d}.py": "".join(f"line {j}\n" for j in range(50)).encode() for i in range(20)}
    new = {k: v.replace(b"line 7\n", b"LINE 7\n") for k, v in old.items()}
    d = snaps.diff(snaps.put_files(old), snaps.put_files(new), max_lines=40, max_bytes=10_000)
    assert d.truncated
    assert len(d.files_changed) == 20
    assert d.text.count("\n") <= 41
    assert "more changed file(s) not shown" in d.text.splitlines()[-1]


def test_materialize_restores_files_and_modes(tmp_path: Path, snaps: SnapshotStore) -> None:
    src = _tree(tmp_path / "w", {"run.sh": "#!/bin/sh\n", "pkg/mod.py": "M\n"})
    (src / "run.sh").chmod(0o755)
    snap = snaps.put_tree(src)
    out = tmp_path / "out"
    assert snaps.materialize(snap, out) == ["pkg/mod.py", "run.sh"]
    assert (out / "pkg/mod.py").read_text() == "M\n"
    assert os.stat(out / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(out / "pkg/mod.py").st_mode & 0o777 == 0o644
    with pytest.raises(SnapshotPathError, match="empty directory"):
        snaps.materialize(snap, out)


def test_a_corrupt_blob_is_detected_on_read(snaps: SnapshotStore) -> None:
    snap = snaps.put_files({"a.py": b"hello"})
    blob = _blobs(snaps)[0]
    blob.write_bytes(b"HELLO")
    with pytest.raises(SnapshotError, match="corrupt"):
        snaps.read_file(snap, "a.py")


def test_concurrent_puts_of_one_tree_agree(snaps: SnapshotStore) -> None:
    files = {f"m{i}.py": f"v = {i}\n".encode() for i in range(30)}
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(snaps.put_files(files))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert len(snaps.list_files(ids[0])) == 30


def test_state_dir_builds_the_store_under_snapshots(state: StateDir) -> None:
    snap = state.snapshots.put_files({"a.py": b"1"})
    assert (state.path / "snapshots" / "blobs").is_dir()
    assert state.snapshots.exists(snap)


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_snapshot_store_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    sd = StateDir.create(tmp_path / "state", SearchConfig(task="toy"), database_url=pg_url)
    a = sd.snapshots.put_files({"train.py": b"lr = 1\n"})
    assert sd.snapshots.put_files({"train.py": b"lr = 1\n"}) == a
    b = sd.snapshots.put_files({"train.py": b"lr = 2\n"})
    assert "-lr = 1\n+lr = 2\n" in sd.snapshots.diff(a, b).text
    assert sd.snapshots.materialize(b, tmp_path / "out") == ["train.py"]
    sd.close()


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_on_postgresql_another_host_materialises_a_snapshot_from_the_database_alone(tmp_path: Path,
                                                                                 pg_url: str) -> None:
    sd = StateDir.create(tmp_path / "state", SearchConfig(task="toy"), database_url=pg_url)
    a = sd.snapshots.put_tree(_tree(tmp_path / "a", {"train.py": "lr = 1\n", "lib/util.py": "x = 1\n"}))
    b = sd.snapshots.put_tree(_tree(tmp_path / "b", {"train.py": "lr = 2\n", "lib/util.py": "x = 1\n"}))
    sd.close()
    store = SqlLineageStore(pg_url)  # the worker's: its own cache dir, no access to the search's disk
    elsewhere = SnapshotStore(tmp_path / "cache", store)
    assert elsewhere.materialize(b, tmp_path / "out") == ["lib/util.py", "train.py"]
    assert (tmp_path / "out" / "train.py").read_text() == "lr = 2\n"
    assert len(_blobs(elsewhere)) == 2  # cached
    assert elsewhere.read_file(a, "train.py") == b"lr = 1\n"
    with store.engine.connect() as conn:  # one row per distinct content: util.py is shared
        assert conn.exec_driver_sql("SELECT count(*) FROM snapshot_blob").scalar() == 3
    store.close()


def test_on_sqlite_blobs_stay_on_disk_only(snaps: SnapshotStore) -> None:
    snaps.put_files({"train.py": b"lr = 1\n"})
    with snaps.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM snapshot_blob").scalar() == 0
