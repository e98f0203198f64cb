"""Exclusive execution of runs within one process (memory and Kafka backends)."""

from __future__ import annotations

import threading

from .._exceptions import RunLockedError

__all__ = ["HeldRuns"]


class HeldRuns:
    """The run ids being executed in this process; thread-safe."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[str] = set()

    def hold(self, run_id: str) -> _Hold:
        """Hold ``run_id`` for a ``with`` (or ``async with``) block, or raise RunLockedError
        on entering it if it is held already."""
        return _Hold(self, run_id)

    def _take(self, run_id: str) -> None:
        with self._mutex:
            if run_id in self._held:
                raise RunLockedError(run_id)
            self._held.add(run_id)

    def _release(self, run_id: str) -> None:
        with self._mutex:
            self._held.discard(run_id)


class _Hold:
    """One hold of a run id (a plain class: entering it is on every activation's path)."""

    __slots__ = ("_held", "_run_id")

    def __init__(self, held: HeldRuns, run_id: str) -> None:
        self._held = held
        self._run_id = run_id

    def __enter__(self) -> None:
        self._held._take(self._run_id)

    def __exit__(self, *exc_info: object) -> None:
        self._held._release(self._run_id)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()
