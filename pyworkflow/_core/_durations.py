"""Parsing of durations: ``"30s"``, ``"1h30m"``, numbers, ``timedelta`` and absolute times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

__all__ = ["Duration", "parse_duration", "resolve_due_time"]

Duration = str | int | float | timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_duration(value: Duration, *, what: str = "duration") -> float:
    """Return ``value`` in seconds.

    Accepts seconds as a number, a ``timedelta``, or a string made of ``<number><unit>``
    parts with units ``ms s m h d w`` (``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``).

    Raises:
        ValueError: the value is malformed or negative; the message names it.
    """
    if isinstance(value, bool):
        msg = f"invalid {what} {value!r}: pass seconds as a number, a timedelta or '30s'"
        raise ValueError(msg)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if not _WHOLE.fullmatch(text):
            msg = (
                f"invalid {what} {value!r}: use a number of seconds or parts like "
                "'30s', '5m', '1h', '1d', '1h30m'"
            )
            raise ValueError(msg)
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    else:
        msg = (
            f"invalid {what} {value!r} of type {type(value).__name__}: use seconds, "
            "a timedelta or a string like '30s'"
        )
        raise ValueError(msg)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        msg = f"invalid {what} {value!r}: it must be a finite number of seconds"
        raise ValueError(msg)
    if seconds < 0:
        msg = f"invalid {what} {value!r}: it is negative; durations must be >= 0"
        raise ValueError(msg)
    return seconds


def resolve_due_time(value: Duration | datetime, now: datetime) -> datetime:
    """Return the absolute due time of ``value`` counted from ``now``.

    A ``datetime`` must be timezone-aware; one in the past is due at once.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = (
                f"invalid sleep target {value!r}: it has no timezone; pass an aware "
                "datetime such as datetime(..., tzinfo=timezone.utc)"
            )
            raise ValueError(msg)
        return max(value, now)
    return now + timedelta(seconds=parse_duration(value))
