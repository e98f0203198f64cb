"""Describing exceptions for the log, and rebuilding recorded step failures on replay.

A step's final failure records, besides its class path and message, what rebuilds the
exception faithfully without pickle: its ``args`` and the attributes in ``vars(exc)``, when
they are JSON values (str, int, finite float, bool, None, lists and str-keyed dicts of
them: values that come back equal). A value that isn't is named in the record's
``error_notes`` instead (an arg is kept as its ``str()``), and replay adds those notes to
the rebuilt exception.
"""

from __future__ import annotations

import math
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._exceptions import StepFailedError
from .._exceptions import __all__ as exceptions_all

if TYPE_CHECKING:
    from ._events import StepFailed

__all__ = ["LEGACY_NAMES", "describe", "details", "rebuild", "rebuild_step_failure"]

# Failures recorded before public classes reported their public path were stored under the
# private module that defined them. Old logs name them so; they replay as the public class.
LEGACY_NAMES = MappingProxyType(
    {f"pyworkflow._exceptions.{name}": f"pyworkflow.{name}" for name in exceptions_all}
)

# msgpack (the Kafka log) holds integers in 64 bits; JSON has no limit.
_INT_RANGE = range(-(2**63), 2**64)


def describe(exc: BaseException) -> tuple[str, str]:
    """``(error_type, message)``: builtins by bare name, others as ``module.QualName``."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return name, str(exc)


def details(exc: BaseException) -> dict[str, Any]:
    """The ``error_args``, ``error_attrs`` and ``error_notes`` fields of a step failure."""
    notes: list[str] = []
    args: list[Any] = []
    for i, arg in enumerate(exc.args):
        problem = _not_json(arg, f"args[{i}]")
        if problem is None:
            args.append(arg)
        else:
            args.append(str(arg))
            notes.append(f"pyworkflow recorded {problem}; it is str() of the original value")
    attrs: dict[str, Any] = {}
    for name, value in vars(exc).items():
        problem = _not_json(value, f"attribute {name!r}")
        if problem is None:
            attrs[name] = value
        else:
            notes.append(f"pyworkflow did not record {problem}")
    fields: dict[str, Any] = {"error_args": args}
    if attrs:
        fields["error_attrs"] = attrs
    if notes:
        fields["error_notes"] = notes
    return fields


def _not_json(value: Any, where: str) -> str | None:
    """``None`` if ``value`` is a JSON value that comes back equal, else what is wrong."""
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return None
    if cls is int:
        return None if value in _INT_RANGE else f"{where}: an integer beyond 64 bits"
    if cls is float:
        return None if math.isfinite(value) else f"{where}: {value!r} is not a JSON number"
    if cls is list:
        for i, item in enumerate(value):
            if (problem := _not_json(item, f"{where}[{i}]")) is not None:
                return problem
        return None
    if cls is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"{where}: key {key!r} is not a string"
            if (problem := _not_json(item, f"{where}[{key!r}]")) is not None:
                return problem
        return None
    return f"{where}: a {cls.__qualname__}, not a JSON value"


def rebuild(
    step_name: str,
    error_type: str,
    message: str,
    *,
    args: list[Any] | None = None,
    attrs: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> Exception:
    """The exception a recorded step failure raises on replay.

    The class is looked up among modules already imported (nothing is imported from what
    the log says) and built without calling its ``__init__``: its ``args`` are the recorded
    ones (``(message,)`` for records that have none), its recorded attributes are set and
    its recorded notes added. When the class can't be found, :class:`StepFailedError`
    stands in.
    """
    module, _, qualname = LEGACY_NAMES.get(error_type, error_type).rpartition(".")
    found: Any = sys.modules.get(module or "builtins")
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, Exception)):
        return StepFailedError(step_name, error_type, message)
    values = (message,) if args is None else tuple(args)
    try:
        exc: Exception = found.__new__(found, *values)
        Exception.__init__(exc, *values)
    except Exception:  # a class whose __new__ insists on other arguments
        return StepFailedError(step_name, error_type, message)
    vars(exc).update(attrs or {})
    for note in notes or ():
        exc.add_note(note)
    return exc


def rebuild_step_failure(event: StepFailed) -> Exception:
    """The exception that the final failure ``event`` raises on replay."""
    return rebuild(
        event.step_name,
        event.error_type,
        event.error_message,
        args=event.error_args,
        attrs=event.error_attrs,
        notes=event.error_notes,
    )
