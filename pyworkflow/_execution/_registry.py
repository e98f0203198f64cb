"""The registry of workflows and typed hooks defined in this process, by name.

``resume(run_id)`` finds a run's code by the workflow name stored in its log, so every
process that resumes runs must import the modules that define them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["Registry", "registry"]


class Registry:
    """Workflows and typed-hook payload types, by name (the last definition wins)."""

    def __init__(self) -> None:
        self._workflows: dict[str, Workflow[..., Any]] = {}
        self._hook_types: dict[str, Any] = {}

    def add_workflow(self, wf: Workflow[..., Any]) -> None:
        self._workflows[wf.name] = wf

    def workflow(self, name: str) -> Workflow[..., Any] | None:
        return self._workflows.get(name)

    def add_hook_type(self, name: str, tp: Any) -> None:
        self._hook_types[name] = tp

    def hook_type(self, name: str) -> Any | None:
        return self._hook_types.get(name)


registry = Registry()
"""The process-wide registry that ``@workflow`` and ``define_hook`` fill at import time."""
