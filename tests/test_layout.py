"""The architecture rules of DESIGN.md, checked: import direction, task names, module size."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lineage", "evaluator_service", "tasks", "servers", "prompts", "client")
# Imports point one way: client -> servers -> evaluator_service -> tasks, lineage and prompts at the bottom.
ALLOWED = {
    "lineage": set(),
    "tasks": set(),
    "prompts": set(),
    "evaluator_service": {"lineage", "tasks"},
    "servers": {"lineage", "tasks", "evaluator_service", "prompts"},
    "client": {"lineage", "tasks", "evaluator_service", "servers", "prompts"},
}
TASK_NAMES = re.compile(r"digits-speedrun|digits_speedrun|tiny-golf|tiny_golf|airbench|parameter.golf|nanochat")


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    bad = {str(p.relative_to(REPO)): sorted(_imported_packages(p) - ALLOWED[package] - {package})
           for p in _modules(package)}
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "tasks"])
def test_task_names_live_only_under_tasks(package):
    leaks = [str(p.relative_to(REPO)) for p in _modules(package) if TASK_NAMES.search(p.read_text())]
    assert leaks == []


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_under_400_lines(package):
    long = {str(p.relative_to(REPO)): n for p in _modules(package)
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
