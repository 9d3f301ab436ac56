"""The architecture rules of DESIGN.md, checked: import direction, no import cycles, task names, module size."""

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


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:` (imports for annotations only, never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imported_modules(path: Path, modules: set[str], root: Path = REPO) -> set[str]:
    """The modules of `modules` that `path` imports, at the top or inside a function alike."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    me = _module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:  # `from pkg import module` imports the module, else the package
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return (found & modules) - {me}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles_inside_a_package(package):
    """An import inside a function still runs: a cycle it hides is still a cycle."""
    paths = {_module_name(p): p for p in _modules(package)}
    graph = {name: _imported_modules(path, set(paths)) for name, path in paths.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_sees_imports_inside_functions_not_under_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {"__init__.py": "", "a.py": "from pkg import b\n", "b.py": "def f():\n    from .c import x\n",
             "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\n"
                     "def g():\n    import pkg.a\n", "d.py": "if TYPE_CHECKING:\n    import pkg.a\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    names = {f"pkg.{n[:-3]}" for n in files if n != "__init__.py"} | {"pkg"}
    graph = {_module_name(p, tmp_path): _imported_modules(p, names, tmp_path) for p in pkg.glob("*.py")}
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.d"] == set()
    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "tasks"])
def test_task_names_live_only_under_tasks(package):
    leaks = [str(p.relative_to(REPO)) for p in _modules(package) if TASK_NAMES.search(p.read_text())]
    assert leaks == []


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_under_400_lines(package):
    long = {str(p.relative_to(REPO)): n for p in _modules(package)
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
