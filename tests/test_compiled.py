"""The modules a wheel compiles with mypyc (``setup.py``'s ``COMPILED``).

``just test-compiled`` runs the whole suite on a compiled wheel and sets
``PYWORKFLOW_EXPECT_COMPILED=1``: there each of them must be an extension module, so that
the suite can't pass on the pure sources by mistake. An editable install (the README's
commands) stays pure, so that an edit takes effect at once.
"""

from __future__ import annotations

import ast
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import pyworkflow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(pyworkflow.__file__).resolve().parent


def _compiled_paths() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("setup.py has no COMPILED list")


COMPILED = _compiled_paths()


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_the_compiled_modules_exist() -> None:
    assert COMPILED, "setup.py compiles nothing"
    for path in COMPILED:
        assert (PACKAGE.parent / path).is_file(), path


@pytest.mark.parametrize("path", COMPILED)
def test_a_compiled_module_raises_no_error_from_a_cause(path: str) -> None:
    """mypyc drops ``raise ... from``: the error would reach its handler with no cause (the
    engine reads causes). Compiled modules raise ``caused(error, cause)`` instead."""
    tree = ast.parse((PACKAGE.parent / path).read_text())
    chained = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.cause]
    assert not chained, f"{path}: `raise ... from` at lines {chained}; raise caused(error, cause)"


@pytest.mark.parametrize("path", COMPILED)
def test_the_build_under_test_is_the_one_expected(path: str) -> None:
    module = importlib.import_module(_module(path))
    compiled = str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))
    if os.environ.get("PYWORKFLOW_EXPECT_COMPILED"):
        assert compiled, f"{module.__name__} is not compiled: {module.__file__}"
    elif PACKAGE == ROOT / "pyworkflow":  # the source tree itself: an editable install
        assert not compiled, f"{module.__name__} is compiled in the source tree: {module.__file__}"
