"""Exceptions raised by the lineage package.

    LineageError
    ├── SearchNotFoundError
    ├── SearchExistsError
    ├── TrialNotFoundError
    ├── TrialFinishedError      (a write to a finished, immutable row)
    ├── TrialStateError         (a transition the state machine does not allow)
    ├── BudgetExhaustedError    (the search's trial budget is spent)
    ├── SnapshotError
    │   ├── SnapshotNotFoundError
    │   └── SnapshotPathError   (a path outside the snapshot, or too large)
    └── ImportFormatError       (a release-artifact directory that cannot be read at all)
        └── ImportLossError     (rows that cannot be imported; `.lost` names each one)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lineage._tsv import Problem


class LineageError(Exception):
    """Base of every lineage error."""


class SearchNotFoundError(LineageError):
    pass


class SearchExistsError(LineageError):
    pass


class TrialNotFoundError(LineageError):
    pass


class TrialFinishedError(LineageError):
    pass


class TrialStateError(LineageError):
    pass


class BudgetExhaustedError(LineageError):
    pass


class SnapshotError(LineageError):
    pass


class SnapshotNotFoundError(SnapshotError):
    pass


class SnapshotPathError(SnapshotError):
    pass


class ImportFormatError(LineageError):
    pass


class ImportLossError(ImportFormatError):
    """An import would lose rows; `lost` holds one `Problem` (row, where, why) per lost row."""

    def __init__(self, message: str, lost: list[Problem]) -> None:
        super().__init__(message)
        self.lost = lost
