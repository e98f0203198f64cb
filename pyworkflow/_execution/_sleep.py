"""``sleep()``: a durable timer inside a workflow, a plain wait elsewhere."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from .._config import settings
from .._core._durations import Duration, resolve_due_time
from .._core._events import SleepCompleted, SleepStarted
from .._core._replay import Checkpoint, Kind, RunState
from ._clock import Clock
from ._context import RunContext, current_context, is_shielded
from ._drafts import Derive, Draft

__all__ = ["sleep", "start_timer", "timer_done"]


def sleep(duration: Duration | datetime) -> Coroutine[Any, Any, None]:
    """Wait for ``duration`` (``"30s"``, ``"1h30m"``, seconds, ``timedelta``) or until an
    aware ``datetime``.

    In a durable workflow this records ``sleep_started`` with its due time and suspends the
    run; ``resume()`` after the due time records ``sleep_completed`` and goes on. A sleep of
    0 is recorded and does not suspend. Elsewhere it simply waits.

    Raises:
        ValueError: the duration is malformed or negative (raised at the call).
    """
    ctx = current_context()
    clock: Clock = ctx.clock if ctx is not None else settings().clock
    resolve_due_time(duration, clock.now())  # validate at the call, before any await
    if isinstance(ctx, RunContext):
        # Identity is taken at call time, in program order, like a step's.
        index, recorded = ctx.next_checkpoint(Kind.SLEEP, "sleep")
        return _durable_sleep(ctx, index, recorded, duration)
    return _plain_sleep(clock, duration)


async def _plain_sleep(clock: Clock, duration: Duration | datetime) -> None:
    due = resolve_due_time(duration, clock.now())
    await clock.sleep((due - clock.now()).total_seconds())


async def start_timer(ctx: RunContext, duration: Duration | datetime) -> int:
    """A durable timer that the caller waits on itself (a child's ``result(timeout=...)``):
    a sleep checkpoint taken and recorded now; resolve it with :func:`timer_done`."""
    resolve_due_time(duration, ctx.now())  # validate at the call
    index, recorded = ctx.next_checkpoint(Kind.SLEEP, "sleep")
    if recorded is None:
        await _record_start(ctx, index, duration)
    return index


async def _record_start(ctx: RunContext, index: int, duration: Duration | datetime) -> None:
    ctx.check_cancelled()
    now = ctx.now()
    due = resolve_due_time(duration, now)
    await ctx.ask(_started(ctx, index, due, (due - now).total_seconds(), is_shielded()))


async def _durable_sleep(
    ctx: RunContext, index: int, cp: Checkpoint | None, duration: Duration | datetime
) -> None:
    if cp is None:
        await _record_start(ctx, index, duration)
    while True:
        cp = ctx.state.checkpoints[index]
        if cp.resolved:
            return
        ctx.check_cancelled()
        if cp.due is not None and ctx.now() >= cp.due:
            await ctx.ask(timer_done(index))
            continue
        await ctx.suspend(index)


def _started(ctx: RunContext, index: int, due: datetime, seconds: float, shield: bool) -> Derive:
    def derive(state: RunState) -> Sequence[Draft]:
        if index in state.checkpoints:
            return ()
        ctx.check_cancelled(state, shield=shield)
        fields = {"checkpoint": index}
        started = Draft(SleepStarted, {**fields, "duration": seconds, "resume_at": due})
        # A sleep of 0 (or until a time already past) is recorded and does not suspend.
        return (started, Draft(SleepCompleted, fields)) if seconds <= 0 else (started,)

    return derive


def timer_done(index: int) -> Derive:
    """Record the end of sleep checkpoint ``index`` (nothing once it is recorded)."""

    def derive(state: RunState) -> Sequence[Draft]:
        if state.checkpoints[index].resolved:
            return ()
        return (Draft(SleepCompleted, {"checkpoint": index}),)

    return derive
