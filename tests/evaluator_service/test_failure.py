"""Failure summaries: last error line plus the deepest frame inside the recipe."""

from evaluator_service.failure import MAX_CHARS, summarize

TRACE = """\
step 1 loss 2.3
Traceback (most recent call last):
  File "/trial/recipe.py", line 30, in <module>
    main()
  File "/trial/recipe.py", line 12, in train
    x = 1 / 0
        ~~^~~
  File "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/torch/x.py", line 5, in f
    raise ZeroDivisionError("division by zero")
ZeroDivisionError: division by zero
"""


def test_traceback_names_exception_and_deepest_recipe_frame():
    assert summarize(TRACE) == "ZeroDivisionError: division by zero (at recipe.py:12 in train)"


def test_nested_recipe_file_keeps_its_relative_path():
    out = 'Traceback (most recent call last):\n  File "/trial/pkg/model.py", line 3, in fwd\nValueError: bad shape\n'
    assert summarize(out) == "ValueError: bad shape (at pkg/model.py:3 in fwd)"


def test_last_traceback_with_a_recipe_frame_wins_over_a_launcher_traceback():
    launcher = ('Traceback (most recent call last):\n  File "/venv/torch/run.py", line 9, in main\n'
                "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: recipe.py FAILED\n")
    assert summarize("[rank1]: " + TRACE.replace("\n", "\n[rank1]: ") + launcher).startswith(
        "ZeroDivisionError: division by zero (at recipe.py:12")


def test_error_line_without_traceback():
    assert summarize("epoch 1\nRuntimeError: CUDA error: out of memory\nbye\n") == "RuntimeError: CUDA error: out of memory"


def test_killed_process_without_output_reports_the_signal():
    assert summarize("", rc=137) == "killed by SIGKILL (out of memory or killed)"
    assert summarize("", rc=-25) == "killed by SIGXFSZ (file size limit exceeded)"
    assert summarize("", rc=3) == "exit code 3"


def test_summary_is_bounded():
    out = "ValueError: " + "x" * 5000
    assert len(summarize(out)) == MAX_CHARS


def test_unisolated_scratch_root_is_a_recipe_root():
    out = 'Traceback (most recent call last):\n  File "/w/scratch/train-0/recipe.py", line 4, in <module>\nKeyError: 1\n'
    assert summarize(out, roots=("/trial", "/w/scratch/train-0")) == "KeyError: 1 (at recipe.py:4 in <module>)"
