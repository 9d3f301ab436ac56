"""Row -> frozen model conversions shared by the store's modules."""

from __future__ import annotations

import math
from typing import Any

from lineage.models import Search, SearchConfig, Trial
from lineage.tables import SearchRow, TrialRow


def search_model(row: SearchRow) -> Search:
    return Search(
        id=row.id, created_at=row.created_at, config=SearchConfig.model_validate(row.config),
        baseline_score=row.baseline_score, baseline_spread=row.baseline_spread,
        baseline_n=row.baseline_n, best_exp_id=row.best_exp_id, best_score=row.best_score,
        next_exp_id=row.next_exp_id,
    )


def trial_model(row: TrialRow) -> Trial:
    data = row.model_dump(exclude={"id", "heartbeat_at"})
    return Trial.model_validate(data)


def finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
