"""An in-memory index of runs by due time (memory and Kafka backends).

The backends feed it ``due_at(run)`` of every run record they project; it answers
``due_runs`` with a cost that grows with the runs due, not with all runs.
"""

from __future__ import annotations

import heapq
from datetime import datetime

__all__ = ["DueIndex"]

_SLACK = 1024
"""Stale heap entries tolerated beyond the live ones before the heap is rebuilt."""


class DueIndex:
    """Each run's current due time, and a heap of ``(due, run_id)`` with lazy invalidation.

    Invariant: every run in ``_due`` has an entry ``(_due[run_id], run_id)`` in the heap.
    Other heap entries are stale (the run's due moved, or it is no longer due) and are
    dropped when they reach the top, or when stale ones outnumber live ones (a rebuild).
    Not thread-safe: the owner serializes calls.
    """

    def __init__(self) -> None:
        self._due: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def set(self, run_id: str, due: datetime | None) -> None:
        """Record the run's due time (None: not due). O(1) if unchanged, else O(log n)."""
        if self._due.get(run_id) == due:
            return
        if due is None:
            del self._due[run_id]
            return
        self._due[run_id] = due
        heapq.heappush(self._heap, (due, run_id))
        if len(self._heap) > 2 * len(self._due) + _SLACK:
            self._heap = [(d, r) for r, d in self._due.items()]
            heapq.heapify(self._heap)

    def upto(self, until: datetime, limit: int) -> list[tuple[datetime, str]]:
        """The runs due at or before ``until``, earliest first, at most ``limit``.

        O((k + s) log n) for k results and s stale entries met (dropped for good)."""
        heap = self._heap
        found: list[tuple[datetime, str]] = []
        seen: set[str] = set()
        while heap and len(found) < limit and heap[0][0] <= until:
            due, run_id = heapq.heappop(heap)
            if run_id in seen or self._due.get(run_id) != due:
                continue  # stale, or a duplicate of an entry already taken
            seen.add(run_id)
            found.append((due, run_id))
        for entry in found:
            heapq.heappush(heap, entry)
        return found
