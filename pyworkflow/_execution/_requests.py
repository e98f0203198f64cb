"""Requests from outside a run that more than one caller makes (the engine's cancel, a
parent's end cancelling its children, a supervisor's command)."""

from __future__ import annotations

from collections.abc import Sequence

from .._core._events import CancellationRequested
from .._core._replay import RunState
from .._exceptions import ConfigurationError
from ._drafts import Draft

__all__ = ["CancelRequest"]


class CancelRequest:
    """The request that records a cancellation; ``finished`` tells, once it was written,
    whether the run had already finished (then nothing was recorded)."""

    def __init__(self, reason: object) -> None:
        if not (reason is None or isinstance(reason, str)):
            msg = f"cancel_workflow reason {reason!r} must be a string or None"
            raise ConfigurationError(msg)
        self.reason: str | None = reason
        self.finished = False

    def __call__(self, state: RunState) -> Sequence[Draft]:
        self.finished = state.finished
        if state.finished or state.cancel_requested:
            return ()
        return (Draft(CancellationRequested, {"reason": self.reason}),)
