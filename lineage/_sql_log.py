"""Events and specialist sessions: the append-mostly log beside the trial rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from lineage.models import Event, SessionRecord
from lineage.tables import EventRow, SessionRow


class EventLogMixin:
    """Mixed into `SqlLineageStore`; relies on its `_tx`."""

    _tx: Callable[..., Any]

    def record_event(
        self, search_id: str, kind: str, *, specialist: str | None = None,
        exp_id: int | None = None, payload: dict[str, Any] | None = None,
    ) -> None:
        row = EventRow(search_id=search_id, kind=kind, specialist=specialist, exp_id=exp_id,
                       payload=dict(payload or {}))
        self._tx(lambda s: s.add(row))

    def list_events(self, search_id: str, *, after_id: int = 0, limit: int = 1000) -> list[Event]:
        stmt = (
            select(EventRow).where(EventRow.search_id == search_id, col(EventRow.id) > after_id)
            .order_by(EventRow.id).limit(limit)
        )
        return self._tx(lambda s: [Event.model_validate(r.model_dump()) for r in s.exec(stmt)], write=False)

    def record_session(self, session: SessionRecord) -> SessionRecord:
        def fn(s: Session) -> SessionRecord:
            data = session.model_dump()
            row = s.get(SessionRow, session.id) if session.id is not None else None
            if row is None:
                row = SessionRow(**{k: v for k, v in data.items() if k != "id"})
            else:
                for key, value in data.items():
                    setattr(row, key, value)
            s.add(row)
            s.flush()
            return SessionRecord.model_validate(row.model_dump())

        return self._tx(fn)

    def list_sessions(self, search_id: str) -> list[SessionRecord]:
        stmt = select(SessionRow).where(SessionRow.search_id == search_id).order_by(SessionRow.id)
        return self._tx(
            lambda s: [SessionRecord.model_validate(r.model_dump()) for r in s.exec(stmt)], write=False
        )
