"""Executing workflow code over a run's log: the run context, ``@workflow``/``@step``,
``sleep``, ``hook``, cancellation and ``shield``, the registry of names, the clocks, the
kept-state cache and the engine that drives one execution. Imports the core and the storage
port, never a backend.

The engine is imported on first use (``_execution.Engine``, see ``pyworkflow._public``): a
program imports ``pyworkflow`` and defines its workflows and steps without loading it, and
pays for it at its first ``start``/``resume``.
"""

from typing import TYPE_CHECKING, Any

from .. import _public

if TYPE_CHECKING:
    from ._engine import Engine as Engine

_LAZY = _public.LazyExports(globals(), {"Engine": "._engine"})


def __getattr__(name: str) -> Any:
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.dir()
