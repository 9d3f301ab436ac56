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


@pytest.mark.postgres
def test_hosts_in_other_time_zones_agree_on_how_old_a_heartbeat_is(pg_url):
    """A worker whose database session runs in another time zone stamps the same clock."""
    from urllib.parse import quote

    from lineage.models import SearchConfig

    sep = "&" if "?" in pg_url else "?"
    far = SqlLineageStore(pg_url + sep + "options=" + quote("-c timezone=Asia/Tokyo"))
    here = SqlLineageStore(pg_url + sep + "options=" + quote("-c timezone=America/New_York"))
    try:
        far.create_search("s", SearchConfig(task="toy"))
        exp = far.create_trial("s", specialist="opt").exp_id
        far.claim_trial("s", "far-host:1:1")
        assert here.reconcile("s", lambda w: True, stale_s=60) == []
        assert far.heartbeat("s", exp, "far-host:1:1")
        assert here.reconcile("s", lambda w: True, stale_s=60) == []
        assert here.get_trial("s", exp).status.value == "running"
    finally:
        far.close()
        here.close()
