"""The arms study: every (arm, repeat) search run as `autoresearch run` would, then compared by arm."""

from __future__ import annotations

import pytest

from client.study import StudyConfig, run_study, study_figures

QUICK = "tests.client.quicktask.task:TASK"


def test_an_unknown_arm_is_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown arm.*roles, generic"):
        StudyConfig(task=QUICK, out=None, arms=("roles", "llm"))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_study_runs_each_arm_r_times_compares_them_and_resumes(tmp_path):
    cfg = StudyConfig(task=QUICK, out=tmp_path / "study", arms=("generic", "random"), repeats=2, trials=3,
                      extra=("--baseline-score", "20", "--concurrency", "1"))
    seen: list[tuple[str, int, str]] = []
    run_study(cfg, on_search=lambda arm, r, what: seen.append((arm, r, what)))
    assert [s for s in seen if s[2] == "finished"] == [("generic", 0, "finished"), ("generic", 1, "finished"),
                                                        ("random", 0, "finished"), ("random", 1, "finished")]
    result = study_figures(cfg)
    assert [(g["name"], g["n"]) for g in result["groups"]] == [("generic", 2), ("random", 2)]
    assert all(r["trials"] == 3 for r in result["searches"])
    assert all("confirmation_seconds" in g and g["figures"]["improvement"]["mean"] is not None
               for g in result["groups"])
    assert [(v["group"], v["control"]) for v in result["versus"]] == [("generic", "random")]
    vs = result["versus"][0]["figures"]["improvement_pct"]
    means = {g["name"]: g["figures"]["improvement_pct"]["mean"] for g in result["groups"]}
    assert vs["mean"] == pytest.approx(means["generic"] - means["random"]) and vs["n"] == (2, 2)
    again = StudyConfig(task=QUICK, out=tmp_path / "study", arms=("generic", "random"), repeats=2, trials=3)
    seen.clear()
    run_study(again, on_search=lambda arm, r, what: seen.append((arm, r, what)))
    assert {s[2] for s in seen} == {"done before"}  # a finished study resumes to nothing
