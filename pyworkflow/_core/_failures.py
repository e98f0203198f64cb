"""Describing exceptions for the log, and rebuilding recorded step failures on replay."""

from __future__ import annotations

import sys
from types import MappingProxyType
from typing import Any

from .._exceptions import StepFailedError
from .._exceptions import __all__ as exceptions_all

__all__ = ["LEGACY_NAMES", "describe", "rebuild"]

# Failures recorded before public classes reported their public path were stored under the
# private module that defined them. Old logs name them so; they replay as the public class.
LEGACY_NAMES = MappingProxyType(
    {f"pyworkflow._exceptions.{name}": f"pyworkflow.{name}" for name in exceptions_all}
)


def describe(exc: BaseException) -> tuple[str, str]:
    """``(error_type, message)``: builtins by bare name, others as ``module.QualName``."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return name, str(exc)


def rebuild(step_name: str, error_type: str, message: str) -> Exception:
    """The exception a recorded step failure raises on replay.

    The class is looked up among modules already imported (nothing is imported from what
    the log says) and built without calling its ``__init__``: its ``args`` are
    ``(message,)``. When the class can't be found, :class:`StepFailedError` stands in.
    """
    module, _, qualname = LEGACY_NAMES.get(error_type, error_type).rpartition(".")
    found: Any = sys.modules.get(module or "builtins")
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Exception):
        try:
            exc: Exception = found.__new__(found)
            Exception.__init__(exc, message)
        except Exception:  # a class whose __new__ insists on arguments
            return StepFailedError(step_name, error_type, message)
        return exc
    return StepFailedError(step_name, error_type, message)
