"""Folded run states kept between executions, so a resume folds only the newer events.

A state is *taken* by the execution that uses it (no two executions share one object) and
*given back* when that execution ends normally with the run still unfinished. A state is
always the fold of a prefix of its run's log (it changes only by folding events that are
in the log), so the taker brings it up to date with ``read(run_id, after=last_sequence)``,
whatever other tasks or processes appended meanwhile. Kept per storage backend (weakly)
and per run, the least recently used beyond ``size`` runs are dropped.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core._replay import RunState
    from ..storage import StorageBackend

__all__ = ["StateCache"]


class StateCache:
    """Folded states of unfinished runs, by storage backend and run id (thread-safe)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._mutex = threading.Lock()
        self._by_storage: weakref.WeakKeyDictionary[
            StorageBackend, OrderedDict[str, RunState]
        ] = weakref.WeakKeyDictionary()

    def take(self, storage: StorageBackend, run_id: str) -> RunState | None:
        """Remove and return the kept state of ``run_id``, if any."""
        with self._mutex:
            states = self._by_storage.get(storage)
            return states.pop(run_id, None) if states else None

    def give(self, storage: StorageBackend, state: RunState) -> None:
        """Keep ``state`` (of an unfinished run) for the next execution to take."""
        if state.finished:
            return
        with self._mutex:
            try:
                states = self._by_storage.setdefault(storage, OrderedDict())
            except TypeError:  # a backend that can't be weakly referenced: keep nothing
                return
            states[state.run_id] = state
            states.move_to_end(state.run_id)
            while len(states) > self._size:
                states.popitem(last=False)
