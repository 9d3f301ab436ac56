"""The searches a dashboard shows: each opened once, with its live reader and response cache."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineage.live import LiveSearch, LiveState
from lineage.snapshots import SnapshotStore
from lineage.sql import SqlLineageStore
from lineage.state import StateDir


@dataclass
class Source:
    """One search: its state directory, its reader, and the last response built per view."""

    key: str
    state: StateDir
    live: LiveSearch
    _cache: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> SqlLineageStore:
        return self.state.store

    @property
    def snapshots(self) -> SnapshotStore:
        return self.state.snapshots

    @property
    def key_search_id(self) -> str:
        return self.state.search_id

    def title(self) -> str:
        return f"{self.live.state().search.config.task_label} · {self.state.search_id}"

    def etag(self, st: LiveState) -> str:
        return f'"{st.epoch}.{st.version}"'

    def cached(self, st: LiveState, name: str, build: Callable[[], Any]) -> bytes:
        """`build()` as JSON bytes, built once per version of the lineage."""
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == st.version:
                return hit[1]
        body = json.dumps(build(), separators=(",", ":")).encode()
        with self._lock:
            self._cache[name] = (st.version, body)
        return body


class Sources:
    """The searches of one dashboard, by key (the search id, made unique)."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self._by_key = {s.key: s for s in sources}
        self._compare: tuple[str, bytes] | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, states: Iterable[Path], *, min_interval: float = 0.5) -> Sources:
        """Open each state directory (raises `LineageError` for one that holds no search)."""
        out: list[Source] = []
        for path in states:
            sd = StateDir.open(path)
            key = _unique(re.sub(r"[^A-Za-z0-9._-]", "-", sd.search_id), {s.key for s in out})
            out.append(Source(key, sd, LiveSearch(sd.store, sd.search_id, min_interval=min_interval)))
        return cls(out)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Source | None:
        return self._by_key.get(key)

    def keys(self) -> list[str]:
        return list(self._by_key)

    def all(self) -> list[Source]:
        return list(self._by_key.values())

    def first(self) -> Source:
        return next(iter(self._by_key.values()))

    def cached_compare(self, etag: str, build: Callable[[], Any]) -> bytes:
        with self._lock:
            if self._compare is not None and self._compare[0] == etag:
                return self._compare[1]
        body = json.dumps(build(), separators=(",", ":")).encode()
        with self._lock:
            self._compare = (etag, body)
        return body

    def close(self) -> None:
        for s in self._by_key.values():
            s.state.close()


def _unique(key: str, taken: set[str]) -> str:
    if key not in taken:
        return key
    n = 2
    while f"{key}-{n}" in taken:
        n += 1
    return f"{key}-{n}"
