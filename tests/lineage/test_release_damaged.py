"""Damaged copies of the published CIFAR run: rows whose later columns were flattened into a
quoted hypothesis, truncated rows, rows run together, duplicates, rows only in tree.tsv. Every
fixture is a real row of the published results.tsv, damaged the way a release can be. An import
either puts each row back (checked against tree.tsv) or fails and names the rows it would lose."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from lineage.exceptions import ImportLossError
from lineage.release import export_search, import_release
from lineage.state import StateDir
from tests.conftest import PUBLISHED

HYP, STATUS, NOTES = 6, 8, 17  # column positions in the published results.tsv
TREE_STATUS = 5  # in tree.tsv


@pytest.fixture
def release(tmp_path: Path) -> Path:
    if not (PUBLISHED / "results.tsv").is_file():
        pytest.skip(f"the published CIFAR run is not at {PUBLISHED}")
    return Path(shutil.copytree(PUBLISHED, tmp_path / "release"))


class Lines:
    """A copied release's results.tsv and tree.tsv as physical lines, edited by exp id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = (root / "results.tsv").read_text(encoding="utf-8").split("\n")
        self.tree = (root / "tree.tsv").read_text(encoding="utf-8").split("\n")

    def at(self, exp: int, lines: list[str] | None = None) -> int:
        lines = self.results if lines is None else lines
        return next(i for i, x in enumerate(lines) if x.startswith(f"{exp:03d}\t"))

    def cells(self, exp: int) -> list[str]:
        return next(csv.reader([self.results[self.at(exp)]], delimiter="\t"))

    def flatten(self, exp: int, notes: str | None = None) -> list[str]:
        """The damage seen in a released run: the hypothesis is quoted and every later column sits
        inside the quotes, its tab turned into a space. Returns the row's original cells."""
        cells = self.cells(exp)
        if notes is not None:
            cells[NOTES] = notes
        text = " ".join(cells[HYP:])
        self.results[self.at(exp)] = "\t".join(cells[:HYP]) + '\t"' + text.replace('"', '""') + '"'
        return cells

    def truncate(self, exp: int, keep: int) -> None:
        self.results[self.at(exp)] = "\t".join(self.results[self.at(exp)].split("\t")[:keep])

    def run_on(self, exp: int) -> None:
        """Row `exp` and the next one on one line (the newline between them lost)."""
        i = self.at(exp)
        self.results[i:i + 2] = [self.results[i] + self.results[i + 1]]

    def drop(self, exp: int) -> None:
        del self.results[self.at(exp)]

    def drop_tree(self, exp: int) -> None:
        del self.tree[self.at(exp, self.tree)]

    def set_tree(self, exp: int, col: int, value: str) -> None:
        row = self.tree[self.at(exp, self.tree)].split("\t")
        row[col] = value
        self.tree[self.at(exp, self.tree)] = "\t".join(row)

    def save(self) -> None:
        (self.root / "results.tsv").write_text("\n".join(self.results), encoding="utf-8")
        (self.root / "tree.tsv").write_text("\n".join(self.tree), encoding="utf-8")


def _trial(state_path: Path, exp: int):  # type: ignore[no-untyped-def]
    sd = StateDir.open(state_path)
    try:
        return sd.store.get_trial(sd.search_id, exp)
    finally:
        sd.close()


def _published_notes(exp: int) -> str:
    return next(r for r in csv.reader((PUBLISHED / "results.tsv").open(encoding="utf-8", newline=""), delimiter="\t")
                if r[0] == f"{exp:03d}")[NOTES]


# ---------------------------------------------------------------------------- flattened rows
def test_a_row_flattened_into_its_quoted_hypothesis_is_recovered_and_checked_against_tree(
        release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    cells = d.flatten(11)  # a discard with a score, a job name and long notes
    d.save()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, report.lost) == (98, [])
    assert [row for row, _ in report.recovered] == ["exp 011"]
    assert "flattened" in report.recovered[0][1] and "agrees with tree.tsv" in report.recovered[0][1]
    t = _trial(tmp_path / "state", 11)
    assert (t.hypothesis, t.status.value, t.score, t.notes) == (cells[HYP], "discard", 25.4603, cells[NOTES])
    assert (t.extra["job_name"], t.extra["n_seeds"], t.delta) == ("cif-opt-0009", "10", 0.0234)
    assert _trial(tmp_path / "state", 10).notes == _published_notes(10)  # the neighbour is untouched


def test_consecutive_flattened_rows_with_quotes_in_their_text_are_each_recovered_exactly(
        release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    for exp in (38, 39, 40):  # 038/039: notes hold quotes; tree.tsv's hypothesis differs by one space
        d.flatten(exp)
    d.save()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, report.lost) == (98, [])
    assert [row for row, _ in report.recovered] == ["exp 038", "exp 039", "exp 040"]
    assert _trial(tmp_path / "state", 38).notes == _published_notes(38)
    assert '"[internal path]"' in _trial(tmp_path / "state", 39).notes
    sd = StateDir.open(tmp_path / "state")
    export_search(sd, tmp_path / "out")
    sd.close()
    assert (tmp_path / "out/results.tsv").read_bytes() == (PUBLISHED / "results.tsv").read_bytes()


def test_a_flattened_row_with_newlines_in_its_text_is_recovered(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    notes = _published_notes(12).replace(". ", ".\nsecond line. ", 1).replace(". ", ".\n7\tlooks like a row ", 2)
    d.flatten(12, notes=notes)
    d.save()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, report.lost, [r for r, _ in report.recovered]) == (98, [], ["exp 012"])
    t = _trial(tmp_path / "state", 12)
    assert (t.notes, t.status.value, t.extra["job_name"]) == (notes, "disqualified", "cif-aug-0011")


def test_a_flattened_row_that_disagrees_with_tree_is_lost_loudly_not_guessed(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.flatten(11)
    d.set_tree(11, TREE_STATUS, "keep")
    d.save()
    with pytest.raises(ImportLossError, match=r"exp 011.*--allow-loss"):
        import_release(release, tmp_path / "state")
    report = import_release(release, tmp_path / "state", allow_loss=True)
    assert report.rows_imported == 97
    assert [(p.row, "tree.tsv" in p.why) for p in report.lost] == [("exp 011", True)]


def test_a_flattened_row_without_tree_is_recovered_by_its_anchors_and_flagged(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    cells = d.flatten(11)
    d.save()
    (release / "tree.tsv").unlink()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, report.lost) == (98, [])
    assert _trial(tmp_path / "state", 11).notes == cells[NOTES]
    assert any(p.row == "exp 011" and "no tree.tsv row" in p.why for p in report.problems)


@pytest.mark.parametrize("tree", [True, False], ids=["with-tree", "without-tree"])
def test_every_row_flattened_is_recovered_exactly(release: Path, tmp_path: Path, tree: bool) -> None:
    d = Lines(release)
    for exp in range(1, 98):  # no intact row is left to learn the columns' kinds from
        d.flatten(exp)
    d.save()
    if not tree:
        (release / "tree.tsv").unlink()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, len(report.recovered), report.lost) == (98, 97, [])
    sd = StateDir.open(tmp_path / "state")
    export_search(sd, tmp_path / "out")
    sd.close()
    assert (tmp_path / "out/results.tsv").read_bytes() == (PUBLISHED / "results.tsv").read_bytes()


# ---------------------------------------------------------------------------- rows that cannot be read
def test_a_truncated_row_is_never_joined_to_the_previous_row(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.truncate(50, keep=4)  # exp id, timestamp, specialist, parent: a line cut short
    d.save()
    with pytest.raises(ImportLossError, match=r"1 row\(s\).*exp 050.*--allow-loss"):
        import_release(release, tmp_path / "state")
    assert not StateDir.exists(tmp_path / "state")  # nothing written: the same --state can be used again
    report = import_release(release, tmp_path / "state", allow_loss=True)
    assert (report.rows_imported, report.recovered) == (97, [])
    assert [(p.row, p.field) for p in report.lost] == [("exp 050", "results.tsv line 52")]
    assert _trial(tmp_path / "state", 49).notes == _published_notes(49)


def test_two_rows_run_together_on_one_line_are_listed_not_merged(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.run_on(60)
    d.save()
    with pytest.raises(ImportLossError, match="exp 060.*exp 061"):
        import_release(release, tmp_path / "state")
    report = import_release(release, tmp_path / "state", allow_loss=True)
    assert [p.row for p in report.lost] == ["exp 060", "exp 061"]
    assert report.rows_imported == 96 and report.recovered == []
    assert _trial(tmp_path / "state", 59).notes == _published_notes(59)


def test_a_row_only_in_tree_is_a_loss(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.drop(50)
    d.save()
    with pytest.raises(ImportLossError, match="exp 050"):
        import_release(release, tmp_path / "state")
    report = import_release(release, tmp_path / "state", allow_loss=True)
    assert [(p.row, p.field) for p in report.lost] == [("exp 050", "tree.tsv")]
    assert report.rows_imported == 97


def test_a_row_missing_from_tree_is_imported_and_reported(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.drop_tree(50)
    d.save()
    report = import_release(release, tmp_path / "state")
    assert (report.rows_imported, report.lost) == (98, [])
    assert any(p.row == "exp 050" and p.field == "tree.tsv" for p in report.problems)


def test_a_duplicate_exp_id_is_a_loss_unless_the_rows_are_identical(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    i = d.at(60)
    d.results.insert(i + 1, d.results[i])  # the same row twice: nothing lost
    d.save()
    report = import_release(release, tmp_path / "a")
    assert (report.rows_imported, report.lost) == (98, [])
    assert any(p.row == "exp 060" and "identical" in p.why for p in report.problems)
    d.results[i + 1] = d.results[i].replace("\tdisqualified\t", "\tdiscard\t")
    d.save()
    with pytest.raises(ImportLossError, match="exp 060"):
        import_release(release, tmp_path / "b")
    report = import_release(release, tmp_path / "b", allow_loss=True)
    assert [(p.row, p.field) for p in report.lost] == [("exp 060", "results.tsv line 63")]
    assert "differs" in report.lost[0].why
    assert _trial(tmp_path / "b", 60).status.value == "disqualified"  # the first row is the one imported


def test_a_row_whose_exp_id_was_lost_is_listed_not_taken_for_a_continuation(release: Path, tmp_path: Path) -> None:
    d = Lines(release)
    d.results[d.at(50)] = d.results[d.at(50)].removeprefix("050")  # the row now starts with a tab, then its time
    d.save()
    report = import_release(release, tmp_path / "state", allow_loss=True)
    assert [(p.row, p.field) for p in report.lost] == [("exp 050", "tree.tsv"), ("line 52", "results.tsv line 52")]
    assert "unreadable exp id" in report.lost[1].why
    assert _trial(tmp_path / "state", 49).notes == _published_notes(49)
    (release / "tree.tsv").unlink()  # without tree.tsv the loss is as loud
    with pytest.raises(ImportLossError, match="line 52"):
        import_release(release, tmp_path / "again")
