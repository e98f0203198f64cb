"""``@step``: a unit of work whose outcome is recorded once and replayed ever after."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from .._core._caused import caused
from .._core._codec import Codec
from .._core._durations import Duration, parse_duration
from .._core._events import StepCompleted, StepFailed, StepRetrying, StepStarted
from .._core._failures import describe, details, rebuild_step_failure
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import ConfigurationError, FatalError, RetryableError, SerializationError
from ._context import (
    RunContext,
    TransientContext,
    enter_step,
    restore_run,
    run_or_step,
    shield_depth,
)
from ._drafts import UNSTAMPED, Derive, Draft
from ._registry import registry
from ._signals import DrainSignal, SuspendSignal

__all__ = ["RetryPolicy", "Step", "step"]

P = ParamSpec("P")
R = TypeVar("R")


class RetryPolicy:
    """How often and how long apart a failing step is retried."""

    __slots__ = ("backoff", "delay", "max_delay", "max_retries")

    def __init__(
        self,
        max_retries: int,
        retry_delay: Duration,
        backoff: float,
        max_retry_delay: Duration | None,
    ) -> None:
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            msg = f"@step(max_retries={max_retries!r}): pass a whole number >= 0"
            raise ConfigurationError(msg)
        if not isinstance(backoff, int | float) or backoff < 1:
            msg = f"@step(backoff={backoff!r}): pass a factor >= 1 (1 = fixed delay)"
            raise ConfigurationError(msg)
        try:
            self.delay = parse_duration(retry_delay, what="retry_delay")
            self.max_delay = (
                None
                if max_retry_delay is None
                else parse_duration(max_retry_delay, what="max_retry_delay")
            )
        except ValueError as exc:
            raise caused(ConfigurationError(str(exc)), None)
        self.max_retries = max_retries
        self.backoff = float(backoff)

    def delay_after(self, attempt: int, error: Exception) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return parse_duration(error.retry_after, what="retry_after")
        delay = self.delay * self.backoff ** (attempt - 1)
        return delay if self.max_delay is None else min(delay, self.max_delay)

    def gives_up(self, attempt: int, error: Exception) -> bool:
        return isinstance(error, FatalError | SerializationError) or attempt > self.max_retries


class Step(Generic[P, R]):
    """A step. Called inside a durable workflow it becomes a checkpoint; called inside a
    transient workflow it runs with retries; called anywhere else it is a plain call.

    Its checkpoint identity is taken when it is *called* (when the coroutine is created),
    in program order, so ``asyncio.gather(a(), b())`` gives ``a`` and ``b`` stable
    identities whatever order they finish in.
    """

    def __init__(self, fn: Callable[P, Awaitable[R]], *, name: str | None, retry: RetryPolicy):
        if not inspect.iscoroutinefunction(fn):
            msg = f"@step needs an async def function, got {fn!r}"
            raise ConfigurationError(msg)
        self.fn = fn
        self.name: str = name or fn.__name__
        self.retry = retry
        self.codec = Codec(fn, f"step {self.name!r}")
        self._what_result = f"the result of step {self.name!r}"
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        ctx = run_or_step()  # in a step's body (a StepView) the call is a plain one
        if isinstance(ctx, RunContext):
            if not self.codec.resolved:
                ctx.resolve(self.codec)
            index, recorded = ctx.next_checkpoint(Kind.STEP, self.name)
            if recorded is not None and recorded.resolved:
                return self._replayed(recorded)  # replay: the hot path of a resume
            return self._durable(ctx, index, args, kwargs)
        if isinstance(ctx, TransientContext):
            return self._transient(ctx, args, kwargs)
        return self.fn(*args, **kwargs)

    async def _attempt(
        self, ctx: TransientContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        token = enter_step(ctx)
        try:
            return await self.fn(*args, **kwargs)
        finally:
            restore_run(token)

    async def _transient(
        self, ctx: TransientContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        attempt = 1
        while True:
            try:
                return await self._attempt(ctx, args, kwargs)
            except Exception as exc:
                if self.retry.gives_up(attempt, exc):
                    raise
                ctx.log.info("step_retrying", step=self.name, attempt=attempt, error=repr(exc))
                await ctx.clock.sleep(self.retry.delay_after(attempt, exc))
                attempt += 1

    async def _durable(
        self,
        ctx: RunContext,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        step_id = f"{ctx.run_id}.{index}"
        shield = shield_depth() > 0
        owner = ctx.owner
        while True:  # a step's outcome returns or raises; only retries loop
            state = owner.state
            if state.cancel_requested:
                ctx.check_cancelled(state, shield=shield)
            if ctx.suspending:
                raise SuspendSignal  # a concurrent branch is suspending the run
            if owner.draining:
                raise DrainSignal  # the host shuts down: no new step starts
            cp = state.checkpoints.get(index)
            if cp is not None and cp.due is not None and ctx.now() < cp.due:
                await ctx.suspend(index)
            attempt = (cp.attempts if cp else 0) + 1
            started = StepStarted(
                run_id=ctx.run_id,
                sequence=0,
                timestamp=UNSTAMPED,
                step_id=step_id,
                step_name=self.name,
                checkpoint=index,
                attempt=attempt,
            )
            # In flight from the moment it asks to start until its outcome is queued: a
            # suspension in another branch waits for it, so no started step is orphaned.
            ctx.step_started()
            try:
                await ctx.ask(_start(ctx, started, shield))
                try:
                    hidden = enter_step(ctx, step_id)  # _attempt, inline: every step's path
                    try:
                        value = await self.fn(*args, **kwargs)
                    finally:
                        restore_run(hidden)
                    raw = self.codec.encode_result(value, what=self._what_result)
                except Exception as exc:
                    ids = {
                        "step_id": step_id,
                        "step_name": self.name,
                        "checkpoint": index,
                        "attempt": attempt,
                    }
                    await self._record_failure(ctx, ids, attempt, exc)
                else:
                    completed = StepCompleted(
                        run_id=ctx.run_id,
                        sequence=0,
                        timestamp=UNSTAMPED,
                        step_id=step_id,
                        step_name=self.name,
                        checkpoint=index,
                        attempt=attempt,
                        result=raw,
                    )
                    await ctx.record(_completed(completed))
                    if ctx.debug:
                        ctx.log.debug("step_completed", step=self.name, attempt=attempt)
                    return self.codec.live_result(value, raw)  # type: ignore[no-any-return]
            finally:
                ctx.step_done()
            # A failure to retry: run again at once, or wait for its timer.

    async def _replayed(self, cp: Checkpoint) -> R:
        """The recorded outcome of a resolved checkpoint: its result, or its error raised."""
        if cp.failure is not None:
            raise rebuild_step_failure(cp.failure)
        assert cp.result is not None
        return self.codec.decode_result(cp.result)  # type: ignore[no-any-return]

    async def _record_failure(
        self, ctx: RunContext, ids: dict[str, Any], attempt: int, error: Exception
    ) -> None:
        error_type, message = describe(error)
        failed = {**ids, "attempt": attempt, "error_type": error_type, "error_message": message}
        index = ids["checkpoint"]
        if self.retry.gives_up(attempt, error):
            final = {**failed, "final": True, **details(error)}
            await ctx.record(_failed(index, attempt, final))
            ctx.log.info("step_failed", step=self.name, attempt=attempt, error=error_type)
            raise error
        delay = self.retry.delay_after(attempt, error)
        ctx.log.info("step_retrying", step=self.name, attempt=attempt, delay=delay)
        if delay <= 0:
            await ctx.record(_failed(index, attempt, {**failed, "final": False}))
            return
        resume_at = ctx.now() + timedelta(seconds=delay)
        retrying = {**ids, "attempt": attempt + 1, "resume_at": resume_at, "delay": delay}
        await ctx.ask(_failed(index, attempt, {**failed, "final": False}, retrying))


# What a step asks the run's owner for. Each derives its events from the state at writing
# time and returns nothing when the log already holds them (an uncertain write that landed).


def _start(ctx: RunContext, started: StepStarted, shield: bool) -> Derive:
    def derive(state: RunState) -> Sequence[StepStarted]:
        cp = state.checkpoints.get(started.checkpoint)
        if cp is not None and cp.attempts >= started.attempt:
            return ()
        # A cancellation folded in since the step was called stops it before it starts.
        if state.cancel_requested:
            ctx.check_cancelled(state, shield=shield)
        return (started,)

    return derive


def _completed(completed: StepCompleted) -> Derive:
    def derive(state: RunState) -> Sequence[StepCompleted]:
        if state.checkpoints[completed.checkpoint].resolved:
            return ()
        return (completed,)

    return derive


def _failed(
    index: int, attempt: int, fields: dict[str, Any], retrying: dict[str, Any] | None = None
) -> Derive:
    def derive(state: RunState) -> Sequence[Draft]:
        cp = state.checkpoints[index]
        if cp.resolved or cp.failed_attempt >= attempt:
            return ()
        failed = Draft(StepFailed, fields)
        return (failed,) if retrying is None else (failed, Draft(StepRetrying, retrying))

    return derive


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    max_retries: int = 0,
    retry_delay: Duration = 1.0,
    backoff: float = 1.0,
    max_retry_delay: Duration | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Step[P, R]]: ...
def step(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    retry_delay: Duration = 1.0,
    backoff: float = 1.0,
    max_retry_delay: Duration | None = None,
) -> Step[P, R] | Callable[[Callable[P, Awaitable[R]]], Step[P, R]]:
    """Mark an async function as a workflow step.

    Args:
        name: the name recorded in the log (default: the function's ``__name__``).
        max_retries: retries after the first failed attempt (default 0: fail at once).
        retry_delay: seconds, ``"30s"``-style string or ``timedelta`` before a retry. In a
            durable workflow the delay is a durable timer: the run suspends until it is due.
        backoff: multiply the delay by this after each failure (``2`` doubles it).
        max_retry_delay: cap for the delay when backing off.
    """
    policy = RetryPolicy(max_retries, retry_delay, backoff, max_retry_delay)

    def decorate(func: Callable[P, Awaitable[R]]) -> Step[P, R]:
        st = Step(func, name=name, retry=policy)
        registry.add_step(st)
        return st

    if fn is not None:
        return decorate(fn)
    return decorate
