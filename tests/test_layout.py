"""The package layout's import direction (README, "Where things are").

Imports are read from the source (``import`` and ``from`` statements, including those under
``TYPE_CHECKING``), resolved to absolute module names, and checked against what each layer
may import. A new module in the wrong direction fails here, before it becomes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyworkflow

PACKAGE = Path(pyworkflow.__file__).resolve().parent
"""The package's sources (an installed wheel keeps them beside its compiled modules)."""

# layer -> prefixes of the pyworkflow modules it must not import
FORBIDDEN = {
    "pyworkflow._core": (
        "pyworkflow.storage",
        "pyworkflow._execution",
        "pyworkflow.actors",
        "pyworkflow._cli",
        "pyworkflow._api",
        "pyworkflow._config",
        "pyworkflow._logging",
        "pyworkflow.testing",
        "pyworkflow.dashboard",
    ),
    "pyworkflow.storage": (
        "pyworkflow._execution",
        "pyworkflow.actors",
        "pyworkflow._cli",
        "pyworkflow._api",
        "pyworkflow._config",
        "pyworkflow.testing",
        "pyworkflow.dashboard",
    ),
    "pyworkflow._execution": (
        "pyworkflow.actors",
        "pyworkflow._cli",
        "pyworkflow.testing",
        "pyworkflow.dashboard",
    ),
    # The dashboard reads through the storage port and acts through the CLI's operations.
    "pyworkflow.dashboard": ("pyworkflow.actors", "pyworkflow.testing"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "pyworkflow" or m.startswith("pyworkflow.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


def _layer(module: str) -> str | None:
    return next((layer for layer in FORBIDDEN if f"{module}.".startswith(f"{layer}.")), None)


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_import_direction(path: Path) -> None:
    layer = _layer(_module_name(path))
    if layer is None:
        return
    wrong = sorted(
        m for m in _imports(path) for bad in FORBIDDEN[layer] if f"{m}.".startswith(f"{bad}.")
    )
    assert not wrong, f"{_module_name(path)} ({layer}) must not import {wrong}"


def test_the_layers_exist() -> None:
    assert {_layer(_module_name(p)) for p in MODULES} >= set(FORBIDDEN)


def test_the_pure_core_does_no_io_and_reads_no_clock() -> None:
    banned = {"os", "pathlib", "time", "anyio", "trio", "asyncio", "socket", "subprocess"}
    for path in PACKAGE.joinpath("_core").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.partition(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").partition(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and not node.level
        }
        assert not imported & banned, (path.name, imported & banned)
        assert ".now(" not in path.read_text(), path.name


@pytest.mark.parametrize(
    "init", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: _module_name(p)
)
def test_no_package_re_exports_private_names(init: Path) -> None:
    module = _module_name(init)
    tree = ast.parse(init.read_text())
    exported = [
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name  # the explicit re-export form
    ]
    assert not [n for n in exported if n.startswith("_")], module
    if any(part.startswith("_") for part in module.split(".")):
        assert not exported, f"private package {module} re-exports {exported}"
