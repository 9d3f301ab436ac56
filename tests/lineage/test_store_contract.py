"""Run the lineage store contract against every backend: a SQLite file and PostgreSQL."""

from __future__ import annotations

import pytest

from lineage.sql import SqlLineageStore
from tests.contracts.lineage_store import *  # noqa: F403  (the contract's tests)
from tests.contracts.lineage_store_confirm import *  # noqa: F403
from tests.contracts.lineage_store_held import *  # noqa: F403

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite-file":
        url = tmp_path / "lineage.db"
    else:
        url = request.getfixturevalue("pg_url")
    s = SqlLineageStore(url)
    yield s
    s.close()
