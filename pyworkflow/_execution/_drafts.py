"""What workflow code asks a run's owner for: drafts of events, derived from the run's state.

A request is a :data:`Derive` function (see ``_owner``, which runs them). Kept apart from the
owner so that the modules behind ``@step``, ``sleep`` and ``hook`` don't import the owner's
commit machinery: it loads with the engine, at the first ``start``, not at ``import
pyworkflow``.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from msgspec.structs import replace

from .._core._events import Event
from .._core._replay import RunState

__all__ = ["UNSTAMPED", "Derive", "Draft", "stamp"]


class Draft(NamedTuple):
    """An event to append, before it gets its run id, sequence and timestamp."""

    cls: type[Any]
    fields: dict[str, Any]


UNSTAMPED = datetime(1970, 1, 1, tzinfo=UTC)
"""The timestamp of an event drafted whole: a request may return the event itself, with
sequence 0 and this timestamp, instead of a :class:`Draft` (no fields dict to unpack: the
step's path); the commit stamps it with its sequence and the commit's time."""

Derive = Callable[[RunState], Sequence[Draft | Event]]
"""What a request asks for, as the events to write given the state at writing time."""


def stamp(draft: Draft | Event, run_id: str, sequence: int, timestamp: datetime) -> Event:
    """The event ``draft`` stands for, at ``sequence`` and ``timestamp``."""
    if isinstance(draft, Draft):
        return draft.cls(  # type: ignore[no-any-return]
            run_id=run_id, sequence=sequence, timestamp=timestamp, **draft.fields
        )
    return replace(draft, sequence=sequence, timestamp=timestamp)
