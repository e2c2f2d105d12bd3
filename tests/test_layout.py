"""The house plan (docs/architecture.md) as checks: sizes, rooms, and imports that flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genviral_provider"
CORE = PACKAGE / "core"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MAX_CORE_MODULES = 4

# Modules still over the line limit, each to be split by the step its docstring names. The list may only shrink:
# an entry that fits the limit fails the test until it is removed.
OVERSIZED_MODULES: dict[str, str] = {}
OVERSIZED_FUNCTIONS: dict[str, str] = {}

# Which rooms of core a room may import (besides the shared modules rows, log and the package's exceptions).
ALLOWED_ROOMS = {
    "api": set(),
    "reading": {"api"},
    "freshness": {"api"},
    "output": {"reading"},
    "correlation": {"api", "reading"},
}


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "sandbox" not in path.relative_to(PACKAGE).parts)


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _function_lengths(path: Path) -> dict[str, int]:
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = f"{prefix}{getattr(child, 'name', '')}"
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([child.lineno, *(decorator.lineno for decorator in child.decorator_list)])
                lengths[name] = (child.end_lineno or child.lineno) - start + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{name}.")

    visit(ast.parse(path.read_text()), "")
    return lengths


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["genviral_provider", "core"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] not in ("rows", "log") else None


def test_no_module_is_longer_than_one_sitting() -> None:
    over = {_name(path) for path in _modules() if len(path.read_text().splitlines()) > MAX_MODULE_LINES}
    assert over == set(OVERSIZED_MODULES), f"over {MAX_MODULE_LINES} lines: {sorted(over)}"


def test_no_function_is_longer_than_one_screen() -> None:
    over = {
        f"{_name(path)}:{function}"
        for path in _modules()
        for function, length in _function_lengths(path).items()
        if length > MAX_FUNCTION_LINES
    }
    assert over == set(OVERSIZED_FUNCTIONS), f"over {MAX_FUNCTION_LINES} lines: {sorted(over)}"


def test_core_keeps_its_modules_in_rooms() -> None:
    loose = sorted(path.name for path in CORE.glob("*.py"))
    assert len(loose) <= MAX_CORE_MODULES, loose
    for room in (path for path in CORE.iterdir() if path.is_dir() and (path / "__init__.py").exists()):
        assert ast.get_docstring(ast.parse((room / "__init__.py").read_text())), f"core/{room.name} says nothing"


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda path: _name(path))
def test_core_imports_flow_one_way_and_never_airflow(path: Path) -> None:
    own = _room(f"genviral_provider.{'.'.join(path.relative_to(PACKAGE).with_suffix('').parts)}")
    imported = _imported_modules(path)
    assert not {name for name in imported if name.split(".")[0] == "airflow"}
    rooms = {room for name in imported if (room := _room(name)) is not None and room != own}
    assert rooms <= ALLOWED_ROOMS.get(own or "", set()), f"{_name(path)} imports {sorted(rooms)}"


def test_the_architecture_map_names_every_core_module() -> None:
    text = ARCHITECTURE.read_text()
    missing = [
        _name(path)
        for path in sorted(CORE.rglob("*.py"))
        if path.name != "__init__.py" and path.relative_to(CORE).as_posix() not in text and path.name not in text
    ]
    assert missing == []
