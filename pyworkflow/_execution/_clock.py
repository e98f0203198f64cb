"""Clocks: engine logic asks an injected clock for the time, never the OS directly."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["AnyioClock", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """What the engine needs of time: the current UTC time, and a way to wait."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (used by transient workflows' sleeps and retry delays)."""
        ...

    async def wait_until(self, moment: datetime) -> None:
        """Return once ``now() >= moment`` (the runtime's timers wait with this)."""
        ...


async def _wait_until(clock: Clock, moment: datetime) -> None:
    """``wait_until`` for clocks that follow real (or the event loop's) time."""
    # A loop, not one sleep: the wall clock may be set back while we wait.
    while (left := (moment - clock.now()).total_seconds()) > 0:  # noqa: ASYNC110
        await anyio.sleep(left)


class SystemClock:
    """Wall-clock time and real waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def wait_until(self, moment: datetime) -> None:
        await _wait_until(self, moment)


class AnyioClock:
    """Time that follows the event loop's clock, anchored to the wall clock once.

    Under trio with ``MockClock(autojump_threshold=0)`` time is virtual: waits jump ahead
    instantly and ``now()`` moves with them.
    """

    def __init__(self) -> None:
        self._anchor_wall: datetime | None = None
        self._anchor_loop = 0.0

    def now(self) -> datetime:
        current = anyio.current_time()
        if self._anchor_wall is None:
            self._anchor_wall = datetime.now(UTC)
            self._anchor_loop = current
        return self._anchor_wall + timedelta(seconds=current - self._anchor_loop)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def wait_until(self, moment: datetime) -> None:
        await _wait_until(self, moment)


class ManualClock:
    """A clock that moves only when told to: for tests and demos in virtual time.

    ``sleep()`` advances the clock instead of waiting (a transient workflow's sleep and a
    retry delay take no real time); ``wait_until()`` waits until ``advance()`` moves the
    clock there (a supervisor's timers fire when the test moves time).
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            msg = f"ManualClock start {start!r} has no timezone; pass an aware datetime"
            raise ValueError(msg)
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self._waiters: list[tuple[datetime, int, anyio.Event]] = []
        self._count = 0

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the clock forward and return the new time."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            msg = f"cannot move a ManualClock backwards by {seconds!r}"
            raise ValueError(msg)
        self._now += delta
        while self._waiters and self._waiters[0][0] <= self._now:
            heapq.heappop(self._waiters)[2].set()
        return self._now

    async def wait_until(self, moment: datetime) -> None:
        if moment <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        self._count += 1
        heapq.heappush(self._waiters, (moment, self._count, event))
        await event.wait()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()
