"""What workflow code asks a run's owner for: drafts of events, derived from the run's state.

A request is a :data:`Derive` function (see ``_owner``, which runs them). Kept apart from the
owner so that the modules behind ``@step``, ``sleep`` and ``hook`` don't import the owner's
commit machinery: it loads with the engine, at the first ``start``, not at ``import
pyworkflow``.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._core._replay import RunState

__all__ = ["Derive", "Draft"]


class Draft(NamedTuple):
    """An event to append, before it gets its run id, sequence and timestamp."""

    cls: type[Any]
    fields: dict[str, Any]


Derive = Callable[[RunState], Sequence[Draft]]
"""What a request asks for, as the events to write given the state at writing time."""
