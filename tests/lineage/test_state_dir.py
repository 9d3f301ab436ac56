"""The state directory is private to its owner: created 0700, checked and tightened on open."""

from __future__ import annotations

import os
import stat

import pytest

from lineage.models import SearchConfig
from lineage.state import StateDir


def _config() -> SearchConfig:
    return SearchConfig(task="toy", metric="train_s", lower_is_better=True, roster=["opt"])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_state_dir_is_private(tmp_path):
    root = tmp_path / "runs" / "demo"
    StateDir.create(root, _config()).close()
    assert _mode(root) == 0o700


def test_an_existing_empty_dir_is_made_private_on_create(tmp_path):
    root = tmp_path / "shared"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    StateDir.create(root, _config()).close()  # chosen for a new search: no warning needed
    assert _mode(root) == 0o700


def test_open_tightens_a_world_readable_state_dir_and_says_so(tmp_path):
    root = tmp_path / "s"
    StateDir.create(root, _config()).close()
    os.chmod(root, 0o755)
    with pytest.warns(UserWarning, match="readable by others"):
        StateDir.open(root).close()
    assert _mode(root) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_open_refuses_a_state_dir_owned_by_someone_else(tmp_path):
    root = tmp_path / "theirs"
    StateDir.create(root, _config()).close()
    os.chown(root, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to uid 65534"):
        StateDir.open(root)
