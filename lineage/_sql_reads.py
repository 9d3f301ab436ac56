"""Indexed reads the views need beyond listing: ancestry in one recursive query, rows by id,
and narrow counts (one index range each; cheaper than `count_trials`' GROUP BY)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from lineage._convert import trial_model
from lineage.models import Trial
from lineage.tables import TrialRow

_CHAIN = text(
    "WITH RECURSIVE chain(exp_id, parent_exp, n) AS ("
    " SELECT exp_id, parent_exp, 0 FROM trial WHERE search_id = :s AND exp_id = :e"
    " UNION ALL SELECT t.exp_id, t.parent_exp, chain.n + 1 FROM trial t JOIN chain"
    " ON t.search_id = :s AND t.exp_id = chain.parent_exp WHERE chain.n + 1 < :limit)"
    " SELECT exp_id FROM chain ORDER BY n"
)


class ReadsMixin:
    """Mixed into `SqlLineageStore`; relies on its `_tx`."""

    _tx: Callable[..., Any]

    def ancestry_ids(self, search_id: str, exp_id: int, limit: int = 200) -> list[int]:
        """Root -> `exp_id` ids along parent_exp (one recursive indexed query; cycles cut)."""
        ids = self._tx(lambda s: [int(r[0]) for r in s.connection().execute(
            _CHAIN, {"s": search_id, "e": exp_id, "limit": limit})], write=False)
        chain: list[int] = []
        for i in ids:
            if i in chain:
                break
            chain.append(i)
        return chain[::-1]

    def ancestry(self, search_id: str, exp_id: int, limit: int = 200) -> list[Trial]:
        """Root -> exp_id chain following parent_exp."""
        return self.get_trials(search_id, self.ancestry_ids(search_id, exp_id, limit))

    def get_trials(self, search_id: str, exp_ids: list[int]) -> list[Trial]:
        """The trials with these exp ids, in the order given (missing ids skipped)."""
        stmt = select(TrialRow).where(TrialRow.search_id == search_id, col(TrialRow.exp_id).in_(exp_ids))

        def fn(s: Session) -> list[Trial]:
            rows = {r.exp_id: trial_model(r) for r in s.exec(stmt)}
            return [rows[i] for i in exp_ids if i in rows]

        return self._tx(fn, write=False)

    def count(self, search_id: str, *, parent_exp: int | None = None, specialist: str | None = None,
              status: str | None = None) -> int:
        """Trials of a search (baseline excluded), optionally by parent, specialist or status."""
        stmt = select(func.count()).select_from(TrialRow).where(TrialRow.search_id == search_id, TrialRow.exp_id > 0)
        if status is not None:
            stmt = stmt.where(TrialRow.status == status)
        if parent_exp is not None:
            stmt = stmt.where(TrialRow.parent_exp == parent_exp)
        if specialist is not None:
            stmt = stmt.where(TrialRow.specialist == specialist)
        return int(self._tx(lambda s: s.exec(stmt).one(), write=False))
