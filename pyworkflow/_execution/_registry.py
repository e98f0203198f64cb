"""The registry of workflows, steps and typed hooks defined in this process, by name.

``resume(run_id)`` finds a run's code by the workflow name stored in its log, so every
process that resumes runs must import the modules that define them. A log names steps and
hooks too (a checkpoint's identity, a hook's payload type), so each name must stand for one
definition: a second definition under a taken name is refused. Defining the same function
again is not a second definition: a module reloaded, or imported both as ``__main__`` (by
``python -m``) and by its name, redefines it from the same file under the same qualified
name, and replaces it.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._step import Step
    from ._workflow import Workflow

__all__ = ["Registry", "registry"]


class Registry:
    """Workflows, steps and typed-hook payload types, by name, one definition a name."""

    def __init__(self) -> None:
        self._workflows: dict[str, Workflow[..., Any]] = {}
        self._steps: dict[str, Step[..., Any]] = {}
        self._hook_types: dict[str, Any] = {}

    def add_workflow(self, wf: Workflow[..., Any]) -> None:
        known = self._workflows.get(wf.name)
        if known is not None and not _same_definition(known.fn, wf.fn):
            _refuse("workflow", wf.name, known.fn, wf.fn, "@workflow(name=...)")
        self._workflows[wf.name] = wf

    def workflow(self, name: str) -> Workflow[..., Any] | None:
        return self._workflows.get(name)

    def workflow_names(self) -> list[str]:
        return sorted(self._workflows)

    def add_step(self, st: Step[..., Any]) -> None:
        known = self._steps.get(st.name)
        if known is not None and not _same_definition(known.fn, st.fn):
            _refuse("step", st.name, known.fn, st.fn, "@step(name=...)")
        self._steps[st.name] = st

    def add_hook_type(self, name: str, tp: Any) -> None:
        known = self._hook_types.get(name, tp)
        if not (known == tp or _same_definition(known, tp)):
            _refuse("typed hook", name, known, tp, "define_hook(name, ...)")
        self._hook_types[name] = tp

    def hook_type(self, name: str) -> Any | None:
        return self._hook_types.get(name)


def _same_definition(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are one definition made twice: the same qualified name in
    the same module, or in the same source file (``__main__`` and the module's name)."""
    if a is b:
        return True
    qualname = getattr(a, "__qualname__", None)
    if qualname is None or qualname != getattr(b, "__qualname__", None):
        return False
    return a.__module__ == b.__module__ or _source(a) == _source(b) != ""


def _source(obj: Any) -> str:
    try:
        return os.path.realpath(inspect.getfile(inspect.unwrap(obj)))
    except (TypeError, OSError):  # built-in, or defined without a file
        return ""


def _origin(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else repr(obj)


def _refuse(kind: str, name: str, first: Any, second: Any, fix: str) -> None:
    msg = (
        f"{kind} name {name!r} is taken: {_origin(first)} and {_origin(second)} both define "
        f"it, and the log identifies a {kind} by its name alone; give one of them another "
        f"name with {fix}"
    )
    raise ConfigurationError(msg)


registry = Registry()
"""The process-wide registry that ``@workflow``, ``@step`` and ``define_hook`` fill at
import time."""
