"""Control-flow signals. They derive from BaseException so ``except Exception:`` in user
code cannot swallow them (like trio's ``Cancelled``)."""

from __future__ import annotations

__all__ = ["DrainSignal", "SuspendSignal"]


class SuspendSignal(BaseException):
    """Unwinds a durable workflow that must wait (sleep, hook, retry delay).

    The engine catches it and marks the run ``suspended``; ``resume()`` replays it later.
    """


class DrainSignal(BaseException):
    """Unwinds a durable workflow whose host is shutting down, before a new step starts.

    Steps already running finish and are recorded; nothing else is written, so the run stays
    ``running`` in its log and the next host recovers it (its due index says so).
    """
