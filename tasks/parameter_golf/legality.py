"""Static legality checks on a submitted `train_gpt.py`, run in preflight before any sandbox.

Each check reads the source (an AST walk, or a plain text search where a name is the thing
to find) and returns the problems it found, each a sentence that says what to change. They
catch what a static check can catch; the sandbox still guarantees the rest (a train phase
has no validation data to read, whatever its code says).

- `entry_points`: the harness's re-evaluation imports `Hyperparameters` and `load_eval_model`
  from the artifact's code, and `GPT` is the model class; all three must stay module-level.
- `no_validation_data`: the code may not name the hidden validation data (`/hidden`,
  `AR_HIDDEN`, `fineweb_val`): training and GPTQ calibration use training data only.
- `calibration_on_training_data`: functions of the quantization path (`serialize`, and any
  whose name says gptq, hessian or calib) may not touch validation objects (`val_data`,
  `val_tokens`, `ValidationData`, `load_validation_tokens`, `val_files`).
- `wallclock_from_harness`: the training cap is `MAX_WALLCLOCK_SECONDS`, which the harness
  sets; `max_wallclock_seconds` must be read from it once and never assigned elsewhere.
- `artifact_is_the_recipe`: the artifact's code must be this file, packed (`_ar_pack` of
  `Path(__file__)`), since the rules count all of the code.
"""

from __future__ import annotations

import ast

ENTRY_POINTS = ("Hyperparameters", "load_eval_model", "GPT")
HIDDEN_NAMES = ("/hidden", "AR_HIDDEN", "fineweb_val")
VALIDATION_NAMES = {"val_data", "val_tokens", "ValidationData", "load_validation_tokens", "val_files"}
QUANT_WORDS = ("gptq", "hessian", "calib")
WALLCLOCK_READ = "float(os.environ.get('MAX_WALLCLOCK_SECONDS'"
PACKED_SELF = "_ar_pack(Path(__file__)"


def entry_points(tree: ast.Module) -> list[str]:
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return [f"define `{name}` at module level: the harness's re-evaluation imports it from the artifact's code"
            for name in ENTRY_POINTS if name not in defined]


def no_validation_data(source: str) -> list[str]:
    return [f"the code names {name!r}: training and GPTQ calibration may not read validation data (the "
            "harness's eval run gives the validation files through AR_VAL_FILES)"
            for name in HIDDEN_NAMES if name in source]


def _names_in(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, ast.arg):
            found.add(sub.arg)
    return found


def calibration_on_training_data(tree: ast.Module) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        name = node.name.lower()
        if name != "serialize" and not any(w in name for w in QUANT_WORDS):
            continue
        touched = sorted(_names_in(node) & VALIDATION_NAMES)
        if touched:
            out.append(f"`{node.name}` (quantization path) uses {', '.join(touched)}: GPTQ calibration must use "
                       "training data (or self-generated data), never validation data")
    return out


def _assigned(tree: ast.Module, attr: str) -> list[ast.AST]:
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for sub in ast.walk(t):
                    if (isinstance(sub, ast.Name) and sub.id == attr) or (isinstance(sub, ast.Attribute) and sub.attr == attr):
                        targets.append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == attr:
                targets.append(node)
    return targets


def wallclock_from_harness(tree: ast.Module, source: str) -> list[str]:
    assigns = _assigned(tree, "max_wallclock_seconds")
    reads = [a for a in assigns if WALLCLOCK_READ in (ast.get_source_segment(source, a) or "")]
    if len(assigns) == 1 and len(reads) == 1:
        return []
    return ["`max_wallclock_seconds` must be set once, as float(os.environ.get('MAX_WALLCLOCK_SECONDS', ...)): "
            "the harness sets the training cap (the evaluator's watchdog enforces it regardless)"]


def artifact_is_the_recipe(source: str) -> list[str]:
    if PACKED_SELF in source:
        return []
    return ["the artifact's code must be this file, packed: keep serialize(h, base_model, "
            "_ar_pack(Path(__file__).read_text(encoding='utf-8'))) (all code counts toward the cap)"]


def problems(source: str) -> list[str]:
    """Every legality problem of `source` (assumed to parse); [] when none."""
    tree = ast.parse(source)
    return (entry_points(tree) + no_validation_data(source) + calibration_on_training_data(tree)
            + wallclock_from_harness(tree, source) + artifact_is_the_recipe(source))
