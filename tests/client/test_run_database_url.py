"""`autoresearch run --database-url` creates a new search with its lineage in PostgreSQL (as
`init --database-url` does), so a search on remote workers is one command; a resumed search is
read where it was made. Real PostgreSQL from the test fixture; no trial is run (budget 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from lineage.state import StateDir


@pytest.mark.timeout(120)
def test_run_creates_the_search_in_the_postgresql_it_is_given(tmp_path: Path, pg_url: str) -> None:
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["run", "--task", "digits-speedrun", "--state", str(state),
                                      "--database-url", pg_url, "--baseline-score", "6.0", "--trials", "0",
                                      "--agent", "scripted"])
    assert result.exit_code == 0, result.output
    assert not (state / "lineage.db").exists()
    sd = StateDir.open(state)
    try:
        assert sd.database_url == pg_url and sd.store.engine.dialect.name == "postgresql"
        assert sd.search.baseline_score == 6.0
    finally:
        sd.close()
