"""The mutation proposer's decisions (`--agent scripted`): parsing its own hypotheses, adaptive steps, no repeats."""

from __future__ import annotations

import random

from client.proposer import line_for
from client.mutation import Edit, past_edits, propose, step_factor
from tasks.base import parse_tunables

SOURCE = """# --- tunables ---
EPOCHS = 12  # tunable int [2, 40]
LR = 0.003  # tunable float [1e-4, 0.1] log
WIDTH = 64  # tunable int [8, 512]
"""


def test_past_edits_reads_back_the_hypothesis_format():
    rows = [
        {"hypothesis": "set LR 0.003 -> 0.0045 (x1.50)", "parent_exp": 0, "status": "keep"},
        {"hypothesis": "a free-text idea", "parent_exp": 0, "status": "discard"},
        {"hypothesis": "set EPOCHS 12 -> 10", "parent_exp": 3, "status": "crash"},
    ]
    assert past_edits(rows) == [Edit("LR", 0.003, 0.0045, 0, "keep"), Edit("EPOCHS", 12, 10, 3, "crash")]


def test_step_grows_after_keeps_and_shrinks_after_misses():
    base = step_factor("LR", [])
    grown = step_factor("LR", [Edit("LR", 1, 2, 0, "keep")])
    shrunk = step_factor("LR", [Edit("LR", 1, 2, 0, "discard"), Edit("LR", 1, 2, 0, "crash")])
    assert shrunk < base < grown
    assert step_factor("LR", [Edit("LR", 1, 2, 0, "running")]) == base  # unfinished rows say nothing


def test_propose_never_repeats_an_edit_tried_from_the_same_parent():
    tunables = parse_tunables(SOURCE)
    rng = random.Random(0)
    edits: list[Edit] = []
    seen = set()
    for _ in range(25):
        choice = propose(tunables, edits, parent=5, rng=rng)
        assert choice is not None
        t, value = choice
        assert t.low <= value <= t.high and value != t.value
        assert (t.name, f"{value:.6g}") not in seen
        seen.add((t.name, f"{value:.6g}"))
        edits.append(Edit(t.name, float(t.value), float(value), 5, "discard"))
        if t.kind == "int":
            assert float(value).is_integer()


def test_a_kept_direction_is_followed():
    tunables = [t for t in parse_tunables(SOURCE) if t.name == "WIDTH"]
    edits = [Edit("WIDTH", 64, 48, 0, "keep")]
    downs = sum(propose(tunables, edits, parent=1, rng=random.Random(s))[1] < 64 for s in range(40))
    assert downs >= 30


def test_line_edit_keeps_the_tunable_annotation():
    (t,) = [t for t in parse_tunables(SOURCE) if t.name == "LR"]
    old, new = line_for(t, SOURCE, 0.0045)
    assert old == "LR = 0.003  # tunable float [1e-4, 0.1] log"
    assert new == "LR = 0.0045  # tunable float [1e-4, 0.1] log"
    assert parse_tunables(SOURCE.replace(old, new))[1].value == 0.0045


HINTED = """# --- tunables ---
EPOCHS = 30  # tunable int [1, 60] hint=lower
BATCH = 32  # tunable int [8, 512] log hint=higher
"""


def test_hints_parse_and_steer_local_steps():
    epochs, batch = parse_tunables(HINTED)
    assert (epochs.hint, batch.hint, batch.log) == ("lower", "higher", True)
    moves = [propose([epochs], [], parent=0, rng=random.Random(s), jump=0.0)[1] for s in range(40)]
    assert sum(v < 30 for v in moves) >= 25  # the hint is a prior: most steps follow it, not all
    assert any(v > 30 for v in moves)


def test_step_recovers_after_a_run_of_misses():
    misses = [Edit("LR", 1, 2, 0, "discard")] * 7
    assert step_factor("LR", misses[:6]) < step_factor("LR", []) / 2
    assert step_factor("LR", misses) == step_factor("LR", [])  # back to its base, not frozen


def test_jumps_reach_the_whole_declared_range():
    (width,) = [t for t in parse_tunables(SOURCE) if t.name == "WIDTH"]  # no hint: both sides alike
    (_, batch) = parse_tunables(HINTED)
    rng = random.Random(3)
    values = [propose([width], [], parent=0, rng=rng)[1] for _ in range(200)]
    assert min(values) <= 20 and max(values) >= 450  # a local step moves 64 by x0.6..x1.6 at most
    logs = [propose([batch], [], parent=0, rng=rng, jump=1.0)[1] for _ in range(200)]
    assert sum(v < 64 for v in logs) >= 50  # log-uniform: [8, 64) is half the log range


def test_the_proposer_is_deterministic_for_a_seed():
    tunables = parse_tunables(SOURCE)
    edits = [Edit("LR", 0.003, 0.002, 0, "keep"), Edit("WIDTH", 64, 80, 1, "discard")]
    runs = [[propose(tunables, edits, parent=1, rng=rng) for _ in range(10)]
            for rng in (random.Random(11), random.Random(11))]
    assert runs[0] == runs[1]


def test_a_hinted_tunable_is_tried_far_along_its_hint():
    """The knowledge names the wins (a few epochs): the proposer must reach them in a few
    proposals, not creep there by x0.8 steps."""
    (epochs,) = [t for t in parse_tunables(HINTED) if t.name == "EPOCHS"]
    rng = random.Random(5)
    values = [propose([epochs], [], parent=0, rng=rng)[1] for _ in range(200)]
    assert sum(v <= 15 for v in values) >= 30  # half the epochs or fewer: one proposal in five or so
    assert sum(v < 30 for v in values) >= 140  # and mostly along the hint


def test_hinted_tunables_are_tried_first_more_often_than_not():
    """A role that owns levers the knowledge names (hinted) and others (say opt: EPOCHS, BATCH_SIZE
    and LR) spends most of its few trials on the levers, yet still tries the rest."""
    tunables = parse_tunables(HINTED + "LR = 0.002  # tunable float [1e-4, 0.05] log\n")
    picks = [propose(tunables, [], parent=0, rng=random.Random(s))[0].name for s in range(300)]
    assert picks.count("LR") < 60 and picks.count("LR") > 10  # uniform order would give LR a third (100)
