"""A search's state directory: one lineage database plus the files around it.

Layout (everything a search owns lives under one directory):

    <state>/search.json     which search this directory holds, and the database URL
    <state>/lineage.db      the SQLite lineage (unless search.json names a PostgreSQL URL)
    <state>/snapshots/      content-addressed blobs of every submitted tree
    <state>/...             other packages add their own sub-directories (evaluator/, workspaces/)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lineage.exceptions import SearchExistsError, SearchNotFoundError
from lineage.models import Search, SearchConfig
from lineage.sql import SqlLineageStore

if TYPE_CHECKING:
    from lineage.snapshots import SnapshotStore

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_search_id(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "search"
    return name[:128]


@dataclass
class StateDir:
    """An opened state directory. Use `StateDir.create` or `StateDir.open`."""

    path: Path
    search_id: str
    database_url: str | None = None
    _store: SqlLineageStore | None = field(default=None, repr=False)

    @property
    def store(self) -> SqlLineageStore:
        if self._store is None:
            self._store = SqlLineageStore(self.database_url or self.path / "lineage.db")
        return self._store

    @cached_property
    def snapshots(self) -> SnapshotStore:
        from lineage.snapshots import SnapshotStore

        return SnapshotStore(self.path / "snapshots", self.store)

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
        if (root / "search.json").exists():
            raise SearchExistsError(
                f"{root} already holds a search; open it, or choose a new --state directory"
            )
        sid = search_id or default_search_id(root)
        if not _ID.match(sid):
            raise ValueError(f"search id {sid!r}: use letters, digits, '.', '_' or '-' (max 128)")
        root.mkdir(parents=True, exist_ok=True)
        state = cls(root, sid, database_url)
        state.store.create_search(sid, config)
        meta = {"search_id": sid, "database_url": database_url}
        tmp = root / "search.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, root / "search.json")
        return state

    @classmethod
    def open(cls, path: str | Path) -> StateDir:
        root = Path(path)
        meta_path = root / "search.json"
        if not meta_path.exists():
            raise SearchNotFoundError(
                f"{root} holds no search (no search.json); create one with `autoresearch init` "
                "or `autoresearch import`"
            )
        meta = json.loads(meta_path.read_text())
        return cls(root, meta["search_id"], meta.get("database_url"))

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / "search.json").exists()
