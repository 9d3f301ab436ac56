"""The lineage: every trial of a search, the code each ran, and the views specialists read."""

from lineage.base import LineageStore
from lineage.exceptions import (
    LineageError,
    SearchExistsError,
    SearchNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
    TrialStateError,
)
from lineage.models import NoiseMargin, Search, SearchConfig, SessionRecord, Trial, TrialStatus

__all__ = [
    "LineageError",
    "LineageStore",
    "NoiseMargin",
    "Search",
    "SearchConfig",
    "SearchExistsError",
    "SearchNotFoundError",
    "SessionRecord",
    "Trial",
    "TrialFinishedError",
    "TrialNotFoundError",
    "TrialStateError",
    "TrialStatus",
]
