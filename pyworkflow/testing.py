"""Helpers for testing workflows: virtual time."""

from ._clock import AnyioClock as AnyioClock
from ._clock import ManualClock as ManualClock

__all__ = ["AnyioClock", "ManualClock"]
