"""Exclusive execution of runs within one process (memory and Kafka backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .._exceptions import RunLockedError

__all__ = ["HeldRuns"]


class HeldRuns:
    """The run ids being executed in this process; thread-safe."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[str] = set()

    @contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """Hold ``run_id`` for the block, or raise RunLockedError if it is held already."""
        with self._mutex:
            if run_id in self._held:
                raise RunLockedError(run_id)
            self._held.add(run_id)
        try:
            yield
        finally:
            with self._mutex:
                self._held.discard(run_id)
