"""LocalScheduler: the reference library's name for firing schedules in this process; a
thin face over the Supervisor, whose timer service fires schedules beside sleeping runs."""

from __future__ import annotations

from datetime import timedelta

import anyio

from .._config import default_storage, host_for, settings
from .._core._durations import Duration, parse_duration
from .._exceptions import ConfigurationError
from .._execution._clock import Clock
from ..storage import StorageBackend
from ._supervisor import Supervisor

__all__ = ["LocalScheduler"]


class LocalScheduler:
    """Fires the schedules of one storage, and executes their runs, in this process.

    ``await LocalScheduler(storage=...).run(duration="1h")`` opens a ``Supervisor`` on the
    storage for ``duration`` (forever if None): its timer service fires each schedule at
    its due time (it reads the storage's schedules every ``poll_interval`` seconds, so a
    schedule made elsewhere is seen within that), and its actors execute the runs (and
    wake their sleeps and hooks). If a Supervisor already hosts the storage in this
    process, ``run`` just waits: that one fires them.

    Args:
        storage: the backend (default: the configured one).
        poll_interval: seconds between reads of the storage's schedules and due runs.
        clock: the clock to fire by (default: the configured one; ``ManualClock`` in tests).
    """

    def __init__(
        self,
        storage: StorageBackend | None = None,
        poll_interval: float = 1.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            poll_interval = -1
        if poll_interval <= 0:
            msg = f"LocalScheduler(poll_interval={poll_interval!r}): pass seconds > 0"
            raise ConfigurationError(msg)
        self.storage = storage
        self.poll_interval = float(poll_interval)
        self.clock = clock

    async def run(self, duration: Duration | None = None) -> None:
        """Fire schedules for ``duration`` (a number of seconds or ``"10m"``; on the
        scheduler's clock), or until cancelled if None. Runs still executing when it ends
        are left ``running`` for the next host, as a Supervisor leaves them."""
        try:
            seconds = None if duration is None else parse_duration(duration, what="duration")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        storage = self.storage if self.storage is not None else default_storage()
        clock = self.clock or settings().clock
        if host_for(storage) is not None:
            await _wait(clock, seconds)
            return
        async with Supervisor(storage=storage, poll_interval=self.poll_interval, clock=clock):
            await _wait(clock, seconds)


async def _wait(clock: Clock, seconds: float | None) -> None:
    if seconds is None:
        await anyio.sleep_forever()
    else:
        await clock.wait_until(clock.now() + timedelta(seconds=seconds))
