"""The apps import each other at module level, without circles.

A circle between modules (services -> tasks -> services, changes -> services ->
changes) used to be dodged with imports inside functions, which hide the
dependency and fail only when the function first runs. These tests keep both
out: the module-level import graph of iamportal's packages has no cycle, and no
function imports a project module, except where a reason is listed below.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "brokering", "iamportal", "requests_app", "usage")

# (file, function) -> why it imports a project module inside the function.
FUNCTION_IMPORTS_ALLOWED = {
    ("iamportal/apps.py", "ready"): "Django's place to import modules that register checks",
}


def _module_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


MODULES = dict(_module_files())


def _is_project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _resolve(node: ast.Import | ast.ImportFrom, importer: str) -> set[str]:
    """The project modules an import statement runs, parent packages included."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".")
            if MODULES[importer].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = {base}
        names |= {
            f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES
        }
    found: set[str] = set()
    for name in names:
        if not _is_project(name):
            continue
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            target = ".".join(parts[:end])
            # A package's own modules find it already being imported.
            if target in MODULES and not importer.startswith(target + "."):
                found.add(target)
    found.discard(importer)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level_imports(block)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set()
        for node in _module_level_imports(tree.body):
            graph[name] |= _resolve(node, name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_module_level_imports_of_the_apps_have_no_cycle() -> None:
    graph = _graph()
    assert "requests_app.services.submit" in graph["requests_app.services"]
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_circle() -> None:
    graph = _graph()
    graph["requests_app.changes"].add("requests_app.services")
    assert any("requests_app.changes" in cycle for cycle in _cycles(graph))


def test_no_function_imports_a_project_module_to_dodge_a_circle() -> None:
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            where = (str(path.relative_to(ROOT)), function.name)
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Import | ast.ImportFrom)
                    and _resolve(node, name)
                    and where not in FUNCTION_IMPORTS_ALLOWED
                ):
                    found.append(f"{where[0]}:{node.lineno} in {where[1]}()")
    assert found == []


# Modules that sat on a circle: each must import first in a fresh interpreter.
@pytest.mark.parametrize(
    "module",
    [
        "requests_app.changes",
        "requests_app.findings",
        "requests_app.notifications",
        "requests_app.tasks",
        "requests_app.services.review",
        "accounts.services",
        "accounts.tasks",
        "brokering.tasks",
    ],
)
def test_a_module_that_sat_on_a_circle_imports_first(module: str) -> None:
    code = f"import django; django.setup(); import {module}"
    result = subprocess.run(  # noqa: S603 (a fixed interpreter and module name)
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "iamportal.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("module", "function"),
    [
        ("accounts.enqueue", "account_sync"),
        ("accounts.enqueue", "role_refresh"),
        ("requests_app.enqueue", "policy_request_apply"),
        ("requests_app.enqueue", "policy_request_expire"),
        ("requests_app.enqueue", "notification_send"),
    ],
)
def test_work_is_queued_under_the_task_paths_workers_run(
    module: str, function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued rows and schedules name tasks by dotted path: the path each enqueue
    helper queues must stay the task's in tasks.py."""
    enqueue = importlib.import_module(module)
    queued: list[str] = []
    monkeypatch.setattr(enqueue, "async_task", lambda path, *args, **kwargs: queued.append(path))
    getattr(enqueue, function)(7)
    [path] = queued
    assert path.startswith(module.split(".")[0] + ".tasks.")
    assert callable(import_string(path))


# What a test may import from tests/: the builders and the shared policy cases.
TEST_HELPER_MODULES = {"tests.factories", "tests.policy.cases"}


def test_tests_import_helpers_only_from_the_factories_and_the_shared_cases() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("tests.") and name not in TEST_HELPER_MODULES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert found == []
