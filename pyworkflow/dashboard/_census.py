"""The count of runs per status shown atop the list: counted in the background.

No storage keeps counts, so counting reads every run (paging ``list_runs``). That is kept
off the request path: a task of the app counts, then waits ``max(min_gap, 20 x the count's
duration)`` before the next (at 100,000 runs on file storage one count takes seconds), and
pages show the last counts with their age.
"""

from __future__ import annotations

import time
from collections import Counter

import anyio

from .._core._records import RunStatus
from ..storage import StorageBackend

__all__ = ["Census"]

_PAGE = 1000


class Census:
    """The latest counts per status of one storage."""

    def __init__(self, storage: StorageBackend, *, min_gap: float = 10.0) -> None:
        self.storage = storage
        self.min_gap = min_gap
        self.counts: dict[RunStatus, int] | None = None
        self.counted_at: float | None = None
        """``time.monotonic()`` when the counts were finished."""
        self.took = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values()) if self.counts else 0

    def age(self) -> float | None:
        return None if self.counted_at is None else time.monotonic() - self.counted_at

    async def refresh(self) -> None:
        """Count every run once."""
        started = time.monotonic()
        counts: Counter[RunStatus] = Counter()
        cursor = None
        while True:
            page = await self.storage.list_runs(limit=_PAGE, cursor=cursor)
            counts.update(run.status for run in page.runs)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        self.counts = {status: counts[status] for status in RunStatus}
        self.counted_at = time.monotonic()
        self.took = self.counted_at - started

    async def run(self) -> None:
        """Count again and again, until cancelled."""
        while True:
            await self.refresh()
            await anyio.sleep(max(self.min_gap, 20 * self.took))
