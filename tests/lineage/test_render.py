"""Rendered views over a real SQLite lineage: content, order, bounds, determinism, indexes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import event

from lineage._render_text import Block, clean, fmt_delta, fmt_exp, layout
from lineage.models import NoiseMargin, Outcome, SearchConfig
from lineage.render import (
    neighbours,
    render_best_only,
    render_knowledge,
    render_leaderboard,
    render_lineage_view,
    render_tree_tsv,
    render_view,
)
from lineage.sql import SqlLineageStore

ROSTER = ("arch", "opt", "aug", "loss", "reg")


def _search(tmp_path: Path, *, lineage: bool = True, best: float = 10.0, margin: float = 0.05,
            roster: tuple[str, ...] = ROSTER) -> SqlLineageStore:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = SqlLineageStore(tmp_path / "lineage.db")
    config = SearchConfig(task="toy", score_field="loss", metric_unit="nats", lower_is_better=True, roster=roster,
                          lineage=lineage, margin=NoiseMargin(abs_delta=margin))
    store.create_search("s", config)
    store.set_baseline("s", best, spread=0.02, n=5)
    return store


def _trial(store: SqlLineageStore, spec: str, score: float | None, *, parent: int = 0, hyp: str = "",
           notes: str = "", status: str = "valid", failure: str = "") -> int:
    t = store.create_trial("s", specialist=spec, hypothesis=hyp or f"{spec} idea", parent_exp=parent, notes=notes)
    store.finish_trial("s", t.exp_id, Outcome(status=status, score=score, failure=failure))
    return t.exp_id


@pytest.fixture
def store(tmp_path: Path) -> SqlLineageStore:
    s = _search(tmp_path)
    _trial(s, "arch", 9.5, hyp="wider blocks")                      # 1 keep
    _trial(s, "opt", 9.48, parent=1, hyp="lr 9 -> 11")               # 2 within noise
    _trial(s, "aug", None, parent=1, status="crash", failure="CUDA OOM at step 3")  # 3 crash
    _trial(s, "loss", 9.0, parent=1, hyp="label smoothing 0.1")      # 4 keep
    _trial(s, "reg", 9.9, parent=4, hyp="EMA of weights")            # 5 worse
    _trial(s, "opt", 8.9, parent=4, hyp="warmup 5%")                 # 6 keep
    yield s
    s.close()


def _sections(view: str) -> list[str]:
    return re.findall(r"^## (.*)$", view, flags=re.MULTILINE)


def test_lineage_view_has_every_section_in_order(store: SqlLineageStore) -> None:
    view = render_lineage_view(store, "s", "opt")
    names = [s.split(" (")[0] for s in _sections(view)]
    assert names == ["Leaderboard", "The best's ancestry", "The best's children", "Recent activity",
                     "Your recent trials", "Your neighbours' recent trials", "Saturation signal"]
    assert view.startswith("# Lineage — task toy — you are **opt**")


def test_header_states_metric_best_margin_and_spread(store: SqlLineageStore) -> None:
    header = render_lineage_view(store, "s", "opt").split("\n\n")[0]
    assert "Metric: loss (nats), lower is better." in header
    assert "Current best: exp 006 by opt, loss=8.9 — warmup 5%" in header
    assert "spread 0.02, n=5" in header
    assert "noise margin 0.05" in header
    assert "Trials: 6 (3 kept)." in header


def test_rows_show_exp_specialist_status_score_delta_margin_and_note(store: SqlLineageStore) -> None:
    view = render_lineage_view(store, "s", "opt")
    assert "- exp 002 [opt, discard, loss=9.48, Δ=-0.02 (margin 0.05), parent 001] lr 9 -> 11" in view
    assert "  └ within noise: better than exp 001 by 0.02 <= margin 0.05" in view
    assert "- exp 003 [aug, crash, parent 001] aug idea\n  └ CUDA OOM at step 3" in view


def test_ancestry_runs_root_to_best_and_children_are_the_best_s(store: SqlLineageStore) -> None:
    view = render_lineage_view(store, "s", "arch")
    chain = view.split("## The best's ancestry (root → best)\n")[1].split("\n\n")[0]
    assert re.findall(r"^- (exp \d+)", chain, flags=re.MULTILINE) == ["exp 000", "exp 001", "exp 004", "exp 006"]
    assert chain.rstrip().endswith("← BEST")
    children = view.split("## The best's children")[1].split("\n\n")[0]
    assert "(0; newest first)" in children and "No trial has built on exp 006 yet." in children


def test_own_and_neighbour_rows_follow_the_roster(store: SqlLineageStore) -> None:
    view = render_lineage_view(store, "s", "aug")
    own = view.split("## Your recent trials")[1].split("\n\n")[0]
    assert re.findall(r"^- exp (\d+) \[(\w+)", own, flags=re.MULTILINE) == [("003", "aug")]
    near = view.split("## Your neighbours' recent trials")[1].split("\n\n")[0]
    assert near.startswith(" (opt, loss)")
    assert {s for _, s in re.findall(r"^- exp (\d+) \[(\w+)", near, flags=re.MULTILINE)} == {"opt", "loss"}


def test_neighbours_are_cyclic_and_need_three_specialists() -> None:
    assert neighbours(ROSTER, "arch") == ["reg", "opt"]
    assert neighbours(ROSTER, "reg") == ["loss", "arch"]
    assert neighbours(("a", "b"), "a") == []
    assert neighbours(ROSTER, "stranger") == []


def test_view_is_deterministic(store: SqlLineageStore) -> None:
    assert render_view(store, "s", "opt") == render_view(store, "s", "opt")


def test_view_is_bounded_and_never_cuts_a_row(tmp_path: Path) -> None:
    s = _search(tmp_path)
    for i in range(120):
        _trial(s, ROSTER[i % 5], 10.5 + i * 1e-3, hyp=f"idea {i} " + "long words " * 40, notes="n " * 200)
    view = render_lineage_view(s, "s", "opt", max_chars=6000)
    assert len(view) <= 6000
    assert re.search(r"^… \d+ more not shown$", view, flags=re.MULTILINE)
    for line in view.splitlines():
        if line.startswith("- exp "):
            exp = int(line[6:9])
            hyp = clean(s.get_trial("s", exp).hypothesis)
            assert line.endswith((hyp, "← BEST"))
    s.close()


def test_saturation_fires_on_flat_recent_rows_scaled_to_the_metric(tmp_path: Path) -> None:
    big = _search(tmp_path / "big", best=1000.0, margin=0.0)  # scale = 0.1% of 1000 = 1.0
    small = _search(tmp_path / "small", best=1.0, margin=0.0)  # scale = max(spread 0.02, 0.001) = 0.02
    for s, base in ((big, 1000.0), (small, 1.0)):
        for i in range(10):
            _trial(s, ROSTER[i % 2], base + 0.5)
    assert "⚠" in render_lineage_view(big, "s", "arch")
    assert "No saturation signal" in render_lineage_view(small, "s", "arch")
    big.close()
    small.close()


def test_saturation_needs_five_own_rows_and_no_keep(tmp_path: Path) -> None:
    s = _search(tmp_path)
    for _ in range(4):
        _trial(s, "arch", None, status="crash", failure="boom")
    assert "No saturation signal" in render_lineage_view(s, "s", "arch")
    _trial(s, "arch", None, status="disqualified")
    assert "⚠ Your last 5 trials" in render_lineage_view(s, "s", "arch")
    _trial(s, "opt", 9.0)  # a keep anywhere in the recent window lifts it
    assert "No saturation signal" in render_lineage_view(s, "s", "arch")
    s.close()


def test_lineage_off_shows_only_the_best(tmp_path: Path) -> None:
    s = _search(tmp_path, lineage=False)
    _trial(s, "arch", 9.0, hyp="the winning idea")
    _trial(s, "opt", 9.5, hyp="a secret losing idea")
    view = render_view(s, "s", "opt")
    assert view == render_best_only(s, "s", "opt")
    assert "the winning idea" in view and "secret losing idea" not in view
    assert "The lineage is hidden for this arm" in view
    s.close()


def test_leaderboard_lists_keeps_best_first_as_a_table(store: SqlLineageStore) -> None:
    board = render_leaderboard(store, "s")
    rows = [line for line in board.splitlines() if line.startswith("| exp 0")]
    assert [r.split(" | ")[0] for r in rows] == ["| exp 006", "| exp 004", "| exp 001", "| exp 000"]
    assert rows[0] == "| exp 006 | 8.9 | -0.1 | 0.05 | opt | warmup 5% |"


def test_knowledge_summarises_tree_lineage_children_and_recent(store: SqlLineageStore) -> None:
    text_ = render_knowledge(store, "s")
    assert _sections(text_) == ["Research tree", "Current-best lineage (root → best)", "Best's direct children (0)",
                                "Recent activity (last 30)"]
    assert "| exp 004 | 001 | 9 | -0.5 | 2 | loss | label smoothing 0.1 |" in text_


def test_tree_tsv_is_preorder_with_paths(store: SqlLineageStore) -> None:
    lines = list(render_tree_tsv(store, "s", "loss"))
    assert lines[0].split("\t")[:4] == ["exp_id", "parent_exp", "depth", "path"]
    assert [(r.split("\t")[0], r.split("\t")[3]) for r in lines[1:]] == [
        ("000", "000"), ("001", "000/001"), ("002", "000/001/002"), ("003", "000/001/003"),
        ("004", "000/001/004"), ("005", "000/001/004/005"), ("006", "000/001/004/006")]


def test_formats_pad_ids_and_sign_deltas() -> None:
    assert fmt_exp(7) == "exp 007" and fmt_exp(1234) == "exp 1234"
    assert fmt_delta(0.25) == "+0.25" and fmt_delta(-1.23456789) == "-1.23457"


def test_layout_gives_unused_room_to_sections_that_need_it() -> None:
    short = Block("## A", ["a"])
    long = Block("## B", [f"row {i} " + "x" * 40 for i in range(100)])
    out = layout([short, long], [0.5, 0.5], 2000)
    assert len(out) <= 2000
    assert out.count("row ") > 30  # more than half the room went to B


def test_view_uses_indexes_only(tmp_path: Path) -> None:
    s = _search(tmp_path)
    for i in range(40):
        _trial(s, ROSTER[i % 5], 9.99 - i * 0.1, parent=max(0, i - 1))
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, stmt, params, context, many):  # type: ignore[no-untyped-def]
        statements.append((stmt, params))

    event.listen(s.engine, "before_cursor_execute", record)
    render_view(s, "s", "opt")
    render_knowledge(s, "s")
    event.remove(s.engine, "before_cursor_execute", record)
    plans = []
    with s.engine.connect() as conn:
        for stmt, params in statements:
            if stmt.lstrip().upper().startswith(("SELECT", "WITH")):
                plans.extend(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params))
    scans = [p for p in plans if re.match(r"SCAN (trial|t)\b", p) and "INDEX" not in p]
    assert plans and not scans, scans
    s.close()


def test_stored_text_cannot_inject_markdown(tmp_path: Path) -> None:
    s = _search(tmp_path)
    _trial(s, "arch", 9.0, hyp="# Heading\n| a | b |\n```py\nx```<!-- hide -->", notes="> quote\tand\ttabs")
    view = render_view(s, "s", "arch")
    assert "\\# Heading \\| a \\| b \\| \\`\\`\\`py x\\`\\`\\`\\<!-- hide -->" in view
    assert not re.search(r"^(#|>|```)", "\n".join(x for x in view.splitlines() if not x.startswith(("# ", "## "))),
                         flags=re.MULTILINE)
    s.close()


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_views_render_the_same_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    views = []
    for url in (tmp_path / "lineage.db", pg_url):
        s = SqlLineageStore(url)
        s.create_search("s", SearchConfig(task="toy", roster=ROSTER, margin=NoiseMargin(abs_delta=0.05)))
        s.set_baseline("s", 10.0, spread=0.02, n=5)
        for i in range(12):
            _trial(s, ROSTER[i % 5], 9.9 - i * 0.1, parent=i, hyp=f"idea {i}")
        views.append(render_view(s, "s", "opt") + render_knowledge(s, "s"))
        s.close()
    assert views[0] == views[1]
    assert "exp 012" in views[0]
