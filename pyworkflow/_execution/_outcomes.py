"""How one execution of a workflow ended, as the engine records it: done, failed,
cancelled, suspended, drained (its host shuts down) or continued as new."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .._exceptions import CancellationError
from ._context import RunContext
from ._continuation import ContinueAsNewSignal
from ._signals import DrainSignal, SuspendSignal

__all__ = [
    "Cancelled",
    "Continued",
    "Done",
    "Drained",
    "Failed",
    "Outcome",
    "Suspended",
    "classify",
    "leaves_of",
]


@dataclass(slots=True)
class Done:
    result: msgspec.Raw


@dataclass(slots=True)
class Failed:
    error: BaseException


@dataclass(slots=True)
class Cancelled:
    reason: str | None


@dataclass(slots=True)
class Suspended:
    pass


@dataclass(slots=True)
class Drained:
    pass


@dataclass(slots=True)
class Continued:
    args: msgspec.Raw
    kwargs: msgspec.Raw


Outcome = Done | Failed | Cancelled | Suspended | Drained | Continued


def classify(ctx: RunContext, exc: BaseException) -> Outcome:
    """Turn how a workflow execution ended into an outcome, or re-raise what isn't ours."""
    ctx.raise_if_fatal()
    if isinstance(exc, DrainSignal) or (
        isinstance(exc, BaseExceptionGroup) and exc.subgroup(DrainSignal) is not None
    ):
        return Drained()
    if isinstance(exc, ContinueAsNewSignal):
        return Continued(exc.new_args, exc.new_kwargs)
    if isinstance(exc, BaseExceptionGroup):
        continued = exc.subgroup(ContinueAsNewSignal)
        if continued is not None:
            first = leaves_of(continued)[0]
            assert isinstance(first, ContinueAsNewSignal)
            return Continued(first.new_args, first.new_kwargs)
    rest: BaseException | None = exc
    if isinstance(exc, SuspendSignal):
        rest = None
    elif isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(SuspendSignal)
    if rest is None:
        return Suspended()
    leaves = leaves_of(rest)
    if not all(isinstance(e, Exception) for e in leaves):
        raise exc  # KeyboardInterrupt, task cancellation: the run stays running, recoverable
    if all(isinstance(e, CancellationError) for e in leaves):
        first = leaves[0]
        assert isinstance(first, CancellationError)
        return Cancelled(first.reason or ctx.state.cancel_reason)
    return Failed(
        rest if not isinstance(rest, BaseExceptionGroup) or len(leaves) > 1 else leaves[0]
    )


def leaves_of(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves_of(sub)]
    return [exc]
