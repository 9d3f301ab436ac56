"""Hostile free text (tabs, newlines, pipes, markdown, 100 KB strings, replacement characters)
cannot break the TSV export, the views, or the import."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineage._render_text import clean
from lineage._tsv import quote
from lineage.models import Outcome, SearchConfig
from lineage.release import export_search, import_release
from lineage.render import render_knowledge, render_leaderboard, render_view
from lineage.state import StateDir

HOSTILE = [
    "tab\there\tand\tthere",
    "line1\nline2\r\nline3\rline4",
    "| pipes | in | a | row |",
    "# heading\n## sub\n> quote\n- list\n1. item\n```py\ncode\n```",
    'quotes "double" and ""empty"" and a trailing "',
    '"starts with a quote" then text',
    "starts fine\n12\tthen a line that looks like a row\t-1\tkeep",
    "unicode separators \u2028 here \u2029 and \x85 there \x0b\x0c",
    "replacement \ufffd\ufffd characters",
    "NUL \x00 byte",
    "<!-- an html comment --> <script>alert(1)</script>",
    "back\\slash before | pipe \\| and `code` spans",
    "x" * 100_000,
    ("long\twith\ttabs\nand newlines | " * 4000)[:100_000],
]


def _search(tmp_path: Path) -> StateDir:
    sd = StateDir.create(tmp_path / "state", SearchConfig(task="hostile", score_field="loss",
                                                          roster=("a", "b", "c")))
    sd.store.set_baseline(sd.search_id, 10.0, spread=0.1, n=3)
    for i, text in enumerate(HOSTILE):
        t = sd.store.create_trial(sd.search_id, specialist="abc"[i % 3], hypothesis=text, notes=text[::-1],
                                  parent_exp=0)
        status = "valid" if i % 2 == 0 else "crash"
        sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status=status, score=10.0 - i * 0.5 if i % 2 == 0 else None,
                              failure=text if i % 2 else ""))
    return sd


@pytest.fixture
def hostile(tmp_path: Path) -> StateDir:
    sd = _search(tmp_path)
    yield sd
    sd.close()


def test_export_keeps_the_column_count_and_import_restores_text_exactly(hostile: StateDir, tmp_path: Path) -> None:
    export_search(hostile, tmp_path / "out")
    rows = list(csv.reader(io.StringIO((tmp_path / "out/results.tsv").read_text(encoding="utf-8"), newline=""),
                           delimiter="\t"))
    assert len(rows) == len(HOSTILE) + 2
    assert {len(r) for r in rows} == {len(rows[0])}
    tree = (tmp_path / "out/tree.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(tree) == len(HOSTILE) + 2 and {len(x.split("\t")) for x in tree} == {9}
    report = import_release(tmp_path / "out", tmp_path / "back")
    assert report.recovered == [] and report.rows_imported == len(HOSTILE) + 1
    back = StateDir.open(tmp_path / "back")
    for exp, text in enumerate(HOSTILE, 1):
        t = back.store.get_trial(back.search_id, exp)
        assert (t.hypothesis, t.notes) == (text, text[::-1]), exp
        assert t.failure == (text if (exp - 1) % 2 else "")
    back.close()


def unescaped_pipes(line: str) -> int:
    """Pipes that markdown reads as cell borders (not preceded by a backslash escape)."""
    n, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        n += line[i] == "|"
        i += 1
    return n


def test_views_stay_bounded_single_line_rows_and_valid_tables(hostile: StateDir) -> None:
    for spec in ("a", "b", "c"):
        view = render_view(hostile.store, hostile.search_id, spec)
        assert len(view) <= 12_000
        headings = re.findall(r"^#.*$", view, flags=re.MULTILINE)
        assert all(h.startswith(("# Lineage", "## ")) for h in headings), headings
        assert not re.search(r"^(>|```|<)", view, flags=re.MULTILINE)
    board = render_leaderboard(hostile.store, hostile.search_id)
    knowledge = render_knowledge(hostile.store, hostile.search_id)
    for text, widths in ((board, {7}), (knowledge, {8, 7})):
        assert {unescaped_pipes(x) for x in text.splitlines() if x.startswith("|")} == widths
        assert not re.search(r"^(>|```|<)", text, flags=re.MULTILINE)


def test_a_hand_damaged_hostile_release_is_read_without_breaking(hostile: StateDir, tmp_path: Path) -> None:
    export_search(hostile, tmp_path / "out")
    path = tmp_path / "out/results.tsv"
    raw = path.read_bytes().replace(b"replacement", b"repl\xff\xfeacement", 1)
    path.write_bytes(raw + b"garbage line without an id\n")
    report = import_release(tmp_path / "out", tmp_path / "back")
    assert report.rows_imported == len(HOSTILE) + 1
    assert any(p.field == "encoding" for p in report.problems)
    assert any(p.field == "row" for p in report.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_clean_gives_one_neutral_bounded_line(text: str) -> None:
    out = clean(text, 120)
    assert "\n" not in out and "\t" not in out and "\r" not in out
    assert unescaped_pipes(out) == 0
    assert len(re.sub(r"\\(.)", r"\1", out)) <= 121
    assert not out.startswith(("#", ">", "-", "+", "*", "=", "~", "_"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=2, max_size=6))  # rows always have many columns
def test_quoted_cells_round_trip_through_csv(cells: list[str]) -> None:
    line = "\t".join(quote(c) for c in cells) + "\n"
    assert list(csv.reader(io.StringIO(line, newline=""), delimiter="\t")) == [cells]
