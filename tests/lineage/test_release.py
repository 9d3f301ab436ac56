"""Release artifacts: the published CIFAR run imported, reported, exported and re-imported; and
every import quirk on a damaged copy of it. Real SQLite files, real directories."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from lineage._render_report import search_report
from lineage.exceptions import ImportFormatError, ImportLossError, SearchExistsError
from lineage.models import NoiseMargin, Outcome, SearchConfig
from lineage.release import export_search, import_release
from lineage.state import StateDir
from tests.conftest import PUBLISHED

needs_published = pytest.mark.skipif(
    not (PUBLISHED / "results.tsv").is_file(),
    reason=f"the published CIFAR run is not at {PUBLISHED} (../shared/data is outside the project)")
EXPECTED = {"trials": 97, "keeps": 4, "status_counts": {"disqualified": 81, "preflight_crash": 7, "discard": 5, "keep": 4}}
HYP, STATUS, SCORE, NOTES, PARENT = 6, 8, 9, 17, 3  # column positions in the published results.tsv


def _tsv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""), delimiter="\t"))


def _figures(state_path: Path) -> dict:  # type: ignore[type-arg]
    sd = StateDir.open(state_path)
    try:
        return search_report(sd.store, sd.search_id)
    finally:
        sd.close()


@pytest.fixture
def release(tmp_path: Path) -> Path:
    if not (PUBLISHED / "results.tsv").is_file():
        pytest.skip(f"the published CIFAR run is not at {PUBLISHED}")
    return Path(shutil.copytree(PUBLISHED, tmp_path / "release"))


class Damage:
    """Edit a copy of the published results.tsv (and tree.tsv) row by row, by exp id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows = [x.split("\t") for x in (root / "results.tsv").read_text(encoding="utf-8").split("\n")]
        self.tree = [x.split("\t") for x in (root / "tree.tsv").read_text(encoding="utf-8").split("\n")]

    def fields(self, exp: int) -> list[str]:
        return list(self.rows[exp + 1])

    def set(self, exp: int, col: int, value: str, tree_col: int | None = None) -> None:
        self.rows[exp + 1][col] = value
        if tree_col is not None:  # the reference harness writes tree.tsv with tabs/newlines as spaces
            row = next(r for r in self.tree if r[0] == f"{exp:03d}")
            row[tree_col] = value.replace("\t", " ").replace("\n", " ")

    def save(self) -> None:
        (self.root / "results.tsv").write_text("\n".join("\t".join(r) for r in self.rows), encoding="utf-8")
        (self.root / "tree.tsv").write_text("\n".join("\t".join(r) for r in self.tree), encoding="utf-8")


def _trial(state_path: Path, exp: int):  # type: ignore[no-untyped-def]
    sd = StateDir.open(state_path)
    try:
        return sd.store.get_trial(sd.search_id, exp)
    finally:
        sd.close()


# ---------------------------------------------------------------------------- the published run
def _distinct_exp_ids(root: Path) -> set[str]:
    """The exp ids of results.tsv (lines that start with an id, a tab and a timestamp) and tree.tsv."""
    results = {x.split("\t")[0] for x in (root / "results.tsv").read_text(encoding="utf-8").split("\n")[1:]
               if re.match(r"\d+\t\d{4}-\d\d-\d\dT", x)}
    tree = {x.split("\t")[0] for x in (root / "tree.tsv").read_text(encoding="utf-8").split("\n")[1:] if x}
    return results | tree


@needs_published
def test_published_run_imports_with_its_figures(tmp_path: Path) -> None:
    report = import_release(PUBLISHED, tmp_path / "state")
    assert (report.rows_imported, report.score_field, report.lower_is_better) == (98, "train_s", True)
    assert report.rows_imported == len(_distinct_exp_ids(PUBLISHED)) and report.lost == []
    assert {len(r) for r in _tsv(PUBLISHED / "results.tsv")} == {18}  # this release has no damaged row
    assert report.recovered == []
    assert {p.field for p in report.problems} == {"snapshot_path"}  # the release omits the kept snapshots
    fig = _figures(tmp_path / "state")
    assert {k: fig[k] for k in EXPECTED} == EXPECTED
    assert fig["best"]["exp_id"] == 70 and fig["best"]["score"] == 25.1464 and fig["best"]["specialist"] == "opt"
    assert (fig["score_field"], fig["lower_is_better"], fig["baseline"]["score"]) == ("train_s", True, 26.356)


@needs_published
def test_published_run_exports_the_same_rows_and_reimports_the_same_figures(tmp_path: Path) -> None:
    import_release(PUBLISHED, tmp_path / "state")
    sd = StateDir.open(tmp_path / "state")
    report = export_search(sd, tmp_path / "out")
    sd.close()
    assert report.rows == 98
    assert _tsv(tmp_path / "out/results.tsv") == _tsv(PUBLISHED / "results.tsv")  # all 98 rows, field by field
    assert (tmp_path / "out/results.tsv").read_bytes() == (PUBLISHED / "results.tsv").read_bytes()
    best = json.loads((tmp_path / "out/best.json").read_text())
    assert (best["exp_id"], best["train_s"], best["specialist"], best["delta_vs_prev"]) == ("070", 25.1464, "opt", "-0.079500")
    tree = _tsv(tmp_path / "out/tree.tsv")
    assert tree[0] == _tsv(PUBLISHED / "tree.tsv")[0]
    assert [r[:4] for r in tree] == [r[:4] for r in _tsv(PUBLISHED / "tree.tsv")]
    import_release(tmp_path / "out", tmp_path / "again")
    assert _figures(tmp_path / "again") | {"search_id": ""} == _figures(tmp_path / "state") | {"search_id": ""}


@needs_published
def test_exported_views_are_markdown_with_the_best(tmp_path: Path) -> None:
    import_release(PUBLISHED, tmp_path / "state")
    sd = StateDir.open(tmp_path / "state")
    export_search(sd, tmp_path / "out")
    sd.close()
    board = (tmp_path / "out/LEADERBOARD.md").read_text()
    assert "| exp 070 | 25.1464 | -0.0795 |" in board
    knowledge = (tmp_path / "out/KNOWLEDGE.md").read_text()
    assert "## Best's direct children (23)" in knowledge


# ---------------------------------------------------------------------------- import quirks
def test_raw_tabs_in_free_text_are_recovered_exactly(release: Path, tmp_path: Path) -> None:
    d = Damage(release)
    hyp = d.fields(2)[HYP].replace(" + ", "\t+\t", 1)
    notes = d.fields(2)[NOTES].replace(". ", ".\t", 1)
    d.set(2, HYP, hyp, tree_col=8)
    d.set(2, NOTES, notes)
    d.save()
    report = import_release(release, tmp_path / "state")
    assert report.rows_imported == 98
    assert report.recovered == [("exp 002", "3 stray tab(s) in free text; anchored on the status and numeric columns; "
                                             "agrees with tree.tsv")]
    t = _trial(tmp_path / "state", 2)
    assert (t.hypothesis, t.notes, t.status.value, t.score) == (hyp, notes, "disqualified", None)


def test_ambiguous_splits_are_settled_by_tree_or_reported(tmp_path: Path) -> None:
    root = tmp_path / "rel"
    root.mkdir()
    rows = ["exp_id\tspecialist\tparent_exp\tstatus\tscore\tdelta_vs_best\thypothesis\tnotes",
            "000\tbaseline\t\tbaseline\t2.0\t\tbase\t", "001\topt\t000\tkeep\t1.5\t-0.5\tfirst\tpart\tsecond"]
    (root / "results.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ImportLossError, match="exp 001"):
        import_release(root, tmp_path / "a", lower_is_better=True)
    no_tree = import_release(root, tmp_path / "a", lower_is_better=True, allow_loss=True)
    assert no_tree.rows_imported == 1
    assert [(p.row, p.field) for p in no_tree.lost] == [("exp 001", "results.tsv line 3")]
    assert "no unambiguous way to split" in no_tree.lost[0].why
    (root / "tree.tsv").write_text("exp_id\tparent_exp\tdepth\tpath\tspecialist\tstatus\tscore\tdelta_vs_best\thypothesis\n"
                                   "001\t000\t1\t000/001\topt\tkeep\t1.5\t-0.5\tfirst part\n")
    with_tree = import_release(root, tmp_path / "b", lower_is_better=True)
    assert with_tree.rows_imported == 2
    t = _trial(tmp_path / "b", 1)
    assert (t.hypothesis, t.notes) == ("first\tpart", "second")


def test_rows_split_by_raw_newlines_are_joined(release: Path, tmp_path: Path) -> None:
    d = Damage(release)
    notes3 = d.fields(3)[NOTES].replace(". ", ".\nsecond line ", 1)
    notes4 = d.fields(4)[NOTES].replace(". ", ".\n12\tlooks like a row ", 1)
    hyp6 = d.fields(6)[HYP].replace(" ", "\n13\tdigits ", 1)
    d.set(3, NOTES, notes3)
    d.set(4, NOTES, notes4)
    d.set(6, HYP, hyp6, tree_col=8)
    d.save()
    report = import_release(release, tmp_path / "state")
    assert report.rows_imported == 98
    assert [r for r, _ in report.recovered] == ["exp 003", "exp 004", "exp 006"]
    assert (_trial(tmp_path / "state", 3).notes, _trial(tmp_path / "state", 4).notes) == (notes3, notes4)
    assert _trial(tmp_path / "state", 6).hypothesis == hyp6
    assert not [p for p in report.problems if p.field == "row"]


def test_parents_written_as_exp_names_or_bare_numbers_are_read(release: Path, tmp_path: Path) -> None:
    d = Damage(release)
    d.set(11, PARENT, "exp_008")
    d.set(12, PARENT, "8")
    d.set(13, PARENT, "garbage")
    d.save()
    report = import_release(release, tmp_path / "state")
    assert (_trial(tmp_path / "state", 11).parent_exp, _trial(tmp_path / "state", 12).parent_exp) == (8, 8)
    assert _trial(tmp_path / "state", 13).parent_exp is None
    whys = {(p.row, p.field): p.why for p in report.problems}
    assert whys[("exp 011", "parent_exp")] == "'exp_008' read as exp 008"
    assert "unreadable" in whys[("exp 013", "parent_exp")]


def test_empty_fields_stay_empty_never_zero(release: Path, tmp_path: Path) -> None:
    d = Damage(release)
    d.set(11, SCORE, "")
    d.set(11, 13, "")  # delta_vs_best
    d.save()
    import_release(release, tmp_path / "state")
    t = _trial(tmp_path / "state", 11)
    assert (t.score, t.delta) == (None, None)
    assert _trial(tmp_path / "state", 1).score is None  # disqualified rows have no train_s


def test_reference_status_names_are_mapped_and_unknown_ones_reported(release: Path, tmp_path: Path) -> None:
    d = Damage(release)
    for exp, status in ((1, "harness_abort"), (2, "DQ_SIZE"), (3, "TIMEOUT"), (4, "CRASH"), (5, "PREFLIGHT_CRASH"),
                        (6, "DISQUALIFIED"), (9, "FLAKY")):
        d.set(exp, STATUS, status)
    d.set(11, STATUS, "VALID")  # 25.4603 after the 25.4369 keep of exp 008: not strictly better
    d.save()
    with pytest.raises(ImportLossError, match="exp 009"):  # an unknown status is a lost row
        import_release(release, tmp_path / "state")
    report = import_release(release, tmp_path / "state", allow_loss=True)
    got = {e: _trial(tmp_path / "state", e).status.value for e in (1, 2, 3, 4, 5, 6, 11)}
    assert got == {1: "infra_error", 2: "size_blocked", 3: "train_budget_overrun", 4: "crash",
                   5: "preflight_crash", 6: "disqualified", 11: "discard"}
    assert _trial(tmp_path / "state", 1).failure == "source status 'harness_abort' read as infra_error"
    assert "replaying the reference rule" in _trial(tmp_path / "state", 11).decision
    assert report.rows_imported == 97
    assert [(p.row, p.field) for p in report.lost] == [("exp 009", "results.tsv line 11")]
    assert "unknown status 'FLAKY'" in report.lost[0].why


def test_snapshot_dirs_are_stored_and_missing_ones_reported(release: Path, tmp_path: Path) -> None:
    snap = release / "snapshots" / "070_opt"
    snap.mkdir(parents=True)
    (snap / "airbench96.py").write_text("EPOCHS = 42\n")
    report = import_release(release, tmp_path / "state")
    assert report.snapshots_imported == 1
    assert sorted(p.row for p in report.problems if p.field == "snapshot_path") == ["exp 007", "exp 008", "exp 030"]
    sd = StateDir.open(tmp_path / "state")
    t = sd.store.get_trial(sd.search_id, 70)
    assert sd.snapshots.read_file(t.snapshot, "airbench96.py") == b"EPOCHS = 42\n"
    out = export_search(sd, tmp_path / "out")
    sd.close()
    assert out.snapshots == 1
    assert (tmp_path / "out/snapshots/070_opt/airbench96.py").read_text() == "EPOCHS = 42\n"


def test_snapshot_paths_cannot_leave_the_release(release: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("s")
    d = Damage(release)
    d.set(70, 16, "../../outside")
    d.save()
    report = import_release(release, tmp_path / "state")
    assert report.snapshots_imported == 0
    assert _trial(tmp_path / "state", 70).snapshot is None


def test_missing_best_json_infers_best_and_direction_from_keeps(release: Path, tmp_path: Path) -> None:
    (release / "best.json").unlink()
    report = import_release(release, tmp_path / "state")
    assert (report.best_exp_id, report.best_score, report.lower_is_better) == (70, 25.1464, True)
    assert report.direction_rule == "the signs of the keeps' deltas"
    assert any(p.row == "best.json" for p in report.problems)


def test_direction_flag_wins_and_uninferable_direction_is_an_error(release: Path, tmp_path: Path) -> None:
    report = import_release(release, tmp_path / "a", lower_is_better=False)
    assert (report.lower_is_better, report.direction_rule) == (False, "given")
    assert report.best_exp_id == 70  # best.json still names the best
    (release / "best.json").unlink()
    d = Damage(release)
    for exp in (7, 8, 30, 70):
        d.set(exp, 13, "")
    d.set(7, SCORE, "25.0")  # keeps no longer move monotonically
    d.save()
    with pytest.raises(ImportFormatError, match="--lower-is-better or --higher-is-better"):
        import_release(release, tmp_path / "b")


def test_invalid_utf8_is_replaced_and_reported(release: Path, tmp_path: Path) -> None:
    raw = (release / "results.tsv").read_bytes().replace(b"Reduce block3 width", b"Reduce \xff\xfe block3 width", 1)
    (release / "results.tsv").write_bytes(raw)
    report = import_release(release, tmp_path / "state")
    assert _trial(tmp_path / "state", 1).hypothesis.startswith("Reduce \ufffd\ufffd block3 width")
    assert any(p.field == "encoding" for p in report.problems)


def test_not_a_release_and_existing_state_are_refused(release: Path, tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no results.tsv"):
        import_release(tmp_path, tmp_path / "state")
    import_release(release, tmp_path / "state")
    with pytest.raises(SearchExistsError):
        import_release(release, tmp_path / "state")


# ---------------------------------------------------------------------------- native searches
def _native(tmp_path: Path, n: int = 4) -> StateDir:
    sd = StateDir.create(tmp_path / "native", SearchConfig(
        task="toy", score_field="val_bpb", lower_is_better=True, roster=("a", "b", "c"),
        margin=NoiseMargin(abs_delta=0.01)))
    sd.store.set_baseline(sd.search_id, 1.0, spread=0.004, n=3)
    for i in range(1, n + 1):
        snap = sd.snapshots.put_files({"train.py": f"LR = {i}\n".encode()})
        t = sd.store.create_trial(sd.search_id, specialist="abc"[i % 3], hypothesis=f"idea {i}", parent_exp=0,
                                  expected_delta=-0.01, snapshot=snap)
        sd.store.finish_trial(sd.search_id, t.exp_id, Outcome(status="valid", score=1.0 - 0.02 * i,
                              metrics={"acc": 0.9 + i / 100}, timings={"train_s": 10.0 + i}))
    return sd


def test_native_search_round_trips_through_the_release_layout(tmp_path: Path) -> None:
    sd = _native(tmp_path)
    export_search(sd, tmp_path / "out")
    report = import_release(tmp_path / "out", tmp_path / "back")
    assert (report.score_field, report.direction_rule) == ("val_bpb", "best.json's lower_is_better")
    back = StateDir.open(tmp_path / "back")
    for exp in range(5):
        a, b = sd.store.get_trial(sd.search_id, exp), back.store.get_trial(back.search_id, exp)
        for name in ("status", "score", "delta", "margin", "hypothesis", "decision", "parent_exp", "expected_delta",
                     "timings", "best_at_finish"):
            assert getattr(a, name) == getattr(b, name), (exp, name)
        assert a.metrics.items() <= b.metrics.items()
        if a.snapshot:
            assert back.snapshots.read_file(b.snapshot, "train.py") == sd.snapshots.read_file(a.snapshot, "train.py")
    assert _figures(tmp_path / "back")["best"] == _figures(tmp_path / "native")["best"]
    sd.close()
    back.close()


def test_ids_past_999_are_padded_alike_so_text_order_is_numeric(tmp_path: Path) -> None:
    sd = _native(tmp_path, n=1)
    rows = [{"exp_id": e, "specialist": "a", "status": "discard", "score": 2.0, "hypothesis": "x"} for e in (999, 1000)]
    sd.store.close()
    sd2 = StateDir.create(tmp_path / "big", SearchConfig(task="t"))
    sd2.store.import_trials(sd2.search_id, rows, best_exp_id=None, best_score=None)
    export_search(sd2, tmp_path / "out")
    ids = [r[0] for r in _tsv(tmp_path / "out/results.tsv")[1:]]
    assert ids == ["0999", "1000"] and ids == sorted(ids)
    sd2.close()


def test_export_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    sd = _native(tmp_path, n=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(Exception, match="not an empty directory"):
        export_search(sd, tmp_path / "out")
    sd.close()


def test_a_search_without_a_best_keeps_its_direction_and_unfinished_rows_are_reported(tmp_path: Path) -> None:
    sd = StateDir.create(tmp_path / "live", SearchConfig(task="live", score_field="acc", lower_is_better=False))
    sd.store.create_trial(sd.search_id, specialist="a", hypothesis="still queued")
    export_search(sd, tmp_path / "out")
    sd.close()
    assert json.loads((tmp_path / "out/best.json").read_text())["exp_id"] is None
    report = import_release(tmp_path / "out", tmp_path / "back")
    assert (report.lower_is_better, report.direction_rule, report.task) == (False, "best.json's lower_is_better", "live")
    t = _trial(tmp_path / "back", 1)
    assert t.status.value == "cancelled" and "unfinished when the run was released" in t.failure
    assert any(p.row == "exp 001" and p.field == "status" for p in report.problems)


@needs_published
@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_published_run_imports_into_postgresql(tmp_path: Path, pg_url: str) -> None:
    import_release(PUBLISHED, tmp_path / "state", database_url=pg_url)
    fig = _figures(tmp_path / "state")
    assert {k: fig[k] for k in EXPECTED} == EXPECTED and fig["best"]["exp_id"] == 70
