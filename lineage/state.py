"""A search's state directory: one lineage database plus the files around it.

Layout (everything a search owns lives under one directory; `StateLayout` is the one place
these names are written, and every package reads them from it):

    <state>/search.json          which search this directory holds, and the database URL
    <state>/lineage.db           the SQLite lineage (unless search.json names a PostgreSQL URL)
    <state>/snapshots/           content-addressed blobs of every submitted tree
    <state>/workspaces/<name>/   each specialist's private editable copy (servers/app/workspace.py)
    <state>/tokens.json          the specialists' bearer tokens; viewer-token: the dashboard's (servers/auth.py)
    <state>/evaluator/           the evaluator's work dir: workers.lock (one worker process per
                                 search), trees/ (snapshots materialised for trials),
                                 submissions/<pid>-<hex>/ (evaluation jobs' trees, per process)
    <state>/data/<task>/         the task's prepared data
    <state>/transcripts/, logs/run.log, STOP   sessions' transcripts, the run's log, a stop request

The directory is private to its owner (mode 0700): it holds the lineage, every snapshot,
every specialist's workspace and the bearer tokens. `create` makes it so, and `open` checks
it: a directory another user owns is refused, and one readable by others is tightened, with
a warning.
"""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lineage.exceptions import SearchExistsError, SearchNotFoundError
from lineage.models import REMOTE_WORKERS, Search, SearchConfig
from lineage.sql import SqlLineageStore

if TYPE_CHECKING:
    from lineage.snapshots import SnapshotStore

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_search_id(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "search"
    return name[:128]


def make_private(root: Path, *, warn: bool = True) -> None:
    """Check that `root` is ours and readable by us alone (0700); tighten it if it is not.

    Raises:
        PermissionError: `root` belongs to another user.
    """
    st = os.stat(root)
    if st.st_uid != os.geteuid():
        raise PermissionError(
            f"{root} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): a search's state "
            "directory must be private to the user running it; use a directory of your own"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        if warn and stat.S_IMODE(st.st_mode) & 0o077:
            warnings.warn(f"{root} was readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                          "made it private (0700)", stacklevel=3)
        os.chmod(root, 0o700)


def check_lineage_for(config: SearchConfig, database_url: str | None) -> None:
    """Refuse a search whose trials run on workers elsewhere unless its lineage is in PostgreSQL.

    Raises:
        ValueError: the message says what to pass.
    """
    if config.backend == REMOTE_WORKERS and not str(database_url or "").startswith(("postgresql", "postgres:")):
        raise ValueError(
            f"backend {REMOTE_WORKERS!r} runs trials in `autoresearch worker` processes on other hosts, which "
            "reach the lineage (snapshots included) through its database: pass --database-url "
            "postgresql://USER@HOST/DB, or use --backend local")


@dataclass(frozen=True)
class StateLayout:
    """Where each part of a search lives under its state directory `root` (see the module docstring)."""

    root: Path

    @property
    def search_json(self) -> Path:
        return self.root / "search.json"

    @property
    def lineage_db(self) -> Path:
        return self.root / "lineage.db"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    def workspace(self, specialist: str) -> Path:
        return self.workspaces / specialist

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def viewer_token(self) -> Path:
        return self.root / "viewer-token"

    @property
    def evaluator(self) -> Path:
        return self.root / "evaluator"

    @property
    def workers_lock(self) -> Path:
        return self.evaluator / "workers.lock"

    @property
    def trees(self) -> Path:
        return self.evaluator / "trees"

    @property
    def submissions(self) -> Path:
        return self.evaluator / "submissions"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def task_data(self, task: str) -> Path:
        return self.data / task

    @property
    def transcripts(self) -> Path:
        return self.root / "transcripts"

    @property
    def run_log(self) -> Path:
        return self.root / "logs" / "run.log"

    @property
    def stop_request(self) -> Path:
        return self.root / "STOP"


@dataclass
class StateDir:
    """An opened state directory. Use `StateDir.create` or `StateDir.open`."""

    path: Path
    search_id: str
    database_url: str | None = None
    _store: SqlLineageStore | None = field(default=None, repr=False)

    @property
    def layout(self) -> StateLayout:
        return StateLayout(self.path)

    @property
    def store(self) -> SqlLineageStore:
        if self._store is None:
            self._store = SqlLineageStore(self.database_url or self.layout.lineage_db)
        return self._store

    @cached_property
    def snapshots(self) -> SnapshotStore:
        from lineage.snapshots import SnapshotStore

        return SnapshotStore(self.layout.snapshots, self.store)

    @property
    def search(self) -> Search:
        return self.store.get_search(self.search_id)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    @classmethod
    def create(
        cls, path: str | Path, config: SearchConfig, *, search_id: str | None = None,
        database_url: str | None = None,
    ) -> StateDir:
        """Create the directory (or reuse an empty one) and its search."""
        root = Path(path)
        layout = StateLayout(root)
        if layout.search_json.exists():
            raise SearchExistsError(
                f"{root} already holds a search; open it, or choose a new --state directory"
            )
        check_lineage_for(config, database_url)
        sid = search_id or default_search_id(root)
        if not _ID.match(sid):
            raise ValueError(f"search id {sid!r}: use letters, digits, '.', '_' or '-' (max 128)")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_private(root, warn=False)  # the directory the user chose for a new search
        state = cls(root, sid, database_url)
        state.store.create_search(sid, config)
        meta = {"search_id": sid, "database_url": database_url}
        tmp = layout.search_json.with_name("search.json.tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, layout.search_json)
        return state

    @classmethod
    def open(cls, path: str | Path) -> StateDir:
        root = Path(path)
        meta_path = StateLayout(root).search_json
        if not meta_path.exists():
            raise SearchNotFoundError(
                f"{root} holds no search (no search.json); create one with `autoresearch init` "
                "or `autoresearch import`"
            )
        make_private(root)
        meta = json.loads(meta_path.read_text())
        return cls(root, meta["search_id"], meta.get("database_url"))

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return StateLayout(Path(path)).search_json.exists()
