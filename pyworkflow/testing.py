"""Helpers for testing workflows: virtual time."""

from . import _public
from ._clock import AnyioClock as AnyioClock
from ._clock import ManualClock as ManualClock

__all__ = ["AnyioClock", "ManualClock"]

_public.publish(globals(), __all__)
