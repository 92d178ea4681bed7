"""The import direction of `dwh/`'s subpackages, as the README's architecture draws it.

Every import (module level or inside a function, where the slow ones live) is read with
`ast`, so a new module that reaches upwards, or two modules that import each other,
fail here rather than in a reader's head.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dwh.core.settings import PROJECT_DIR

# What each part may import besides itself. The core stands alone; the ingest engine
# stands on it; analytics, onboarding and operations stand on both (never on each
# other); the CLI sits on top and is the only part of `dwh` that imports flows, and the
# dev-only `devstack` package (lazily, for `dwh dev`).
ALLOWED: dict[str, set[str]] = {
    "dwh.core": set(),
    "dwh.ingest": {"dwh.core"},
    "dwh.analytics": {"dwh.core", "dwh.ingest"},
    "dwh.onboarding": {"dwh.core", "dwh.ingest"},
    "dwh.operations": {"dwh.core", "dwh.ingest"},
    "dwh.cli": {
        "dwh.core",
        "dwh.ingest",
        "dwh.analytics",
        "dwh.onboarding",
        "dwh.operations",
        "flows",
        "devstack",
    },
    "dwh.__main__": {"dwh.cli"},
    "devstack": {"dwh.core"},
}
OURS = ("dwh", "flows", "tasks", "devstack")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, with `from x import y` resolved to x.y when x.y is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS}


def _graph() -> dict[str, set[str]]:
    files = [p for top in OURS for p in sorted((PROJECT_DIR / top).rglob("*.py"))]
    modules = {_module_name(p): p for p in files}
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def _part(module: str) -> str:
    """The layer a module belongs to: `dwh.<subpackage>`, or its top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "dwh" and len(parts) > 1 else parts[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        part = _part(module)
        if part not in ALLOWED:
            if part.startswith("dwh."):
                problems.append(f"{module}: a module directly in dwh/; put it in a subpackage")
            continue
        for target in sorted(imported):
            other = _part(target)
            if other != part and other not in ALLOWED[part] and target != "dwh":
                problems.append(f"{module} imports {target} ({part} may import {sorted(ALLOWED[part])})")
    return problems


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, set()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, set()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others."""
    reach = {node: _reachable(graph, node) for node in graph}
    groups = {
        tuple(sorted({node} | {other for other in reach[node] if node in reach.get(other, set())}))
        for node in graph
        if node in reach[node]
    }
    return [list(group) for group in sorted(groups)]


def _package_of(module: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(module + ".") for other in graph)


def test_dwh_subpackages_import_only_downwards() -> None:
    assert layer_violations(_graph()) == []


def test_no_two_modules_import_each_other_even_indirectly() -> None:
    graph = _graph()
    # A package's __init__ may re-export its own modules (devstack, dwh.cli): that is
    # the package, not a cycle between its parts.
    without_reexports = {
        module: {t for t in imported if not (_package_of(module, graph) and t.startswith(module + "."))}
        for module, imported in graph.items()
    }
    assert cycles(without_reexports) == []


def test_every_subpackage_says_what_lives_there_and_what_it_may_import() -> None:
    for package in sorted(p for p in (PROJECT_DIR / "dwh").iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "May import" in doc or package.name == "cli", f"{package}/__init__.py: no 'May import' line"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"dwh.core.a": {"dwh.ingest.b"}, "dwh.ingest.b": set()}, ["dwh.core.a imports dwh.ingest.b"]),
        ({"dwh.analytics.a": {"dwh.operations.b"}, "dwh.operations.b": set()}, ["dwh.analytics.a imports"]),
        ({"dwh.ingest.a": {"flows.x"}, "flows.x": set()}, ["dwh.ingest.a imports flows.x"]),
        ({"dwh.loose": set()}, ["dwh.loose: a module directly in dwh/"]),
    ],
)
def test_the_checks_catch_an_upward_import(graph: dict[str, set[str]], expected: list[str]) -> None:
    problems = layer_violations(graph)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_the_cycle_check_finds_the_blocks_results_circle_it_replaced() -> None:
    graph = {"dwh.core.blocks": {"dwh.core.results"}, "dwh.core.results": {"dwh.core.blocks"}, "x": set()}
    assert cycles(graph) == [["dwh.core.blocks", "dwh.core.results"]]


def test_dwh_dev_without_the_dev_package_says_what_is_missing() -> None:
    """As in the worker image, which does not ship `devstack`: a clear error, not a traceback."""
    probe = (
        "import sys; sys.modules['devstack'] = None\n"
        "from dwh.cli import app\n"
        "sys.argv = ['dwh', 'dev', 'up']\n"
        "app()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_DIR,
        env={**os.environ, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "`dwh dev` needs the development checkout" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_the_image_and_the_wheel_leave_the_dev_stack_out() -> None:
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text(encoding="utf-8")
    copied = [
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert "dwh" in copied
    assert not any(path.startswith("devstack") for path in copied)
    pyproject = (PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8")
    assert 'packages = ["dwh", "flows", "tasks"]' in pyproject


def test_every_engine_statement_is_used_by_the_code() -> None:
    """`sql/engine/` holds what the engine runs; a file nothing names is dead and misleads readers."""
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for top in ("dwh", "flows", "tasks")
        for path in (PROJECT_DIR / top).rglob("*.py")
    )
    unused = [
        path.name
        for path in sorted((PROJECT_DIR / "sql" / "engine").glob("*.sql"))
        if f'"{path.stem}"' not in code and path.name not in code
    ]
    assert unused == []
