"""Control-flow signals. They derive from BaseException so ``except Exception:`` in user
code cannot swallow them (like trio's ``Cancelled``)."""

from __future__ import annotations

__all__ = ["SuspendSignal"]


class SuspendSignal(BaseException):
    """Unwinds a durable workflow that must wait (sleep, hook, retry delay).

    The engine catches it and marks the run ``suspended``; ``resume()`` replays it later.
    """
