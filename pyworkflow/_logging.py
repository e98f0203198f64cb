"""Logging: structlog key-value events on stderr, quiet (warnings only) by default.

The library keeps its own logger pipeline and never calls ``structlog.configure``, so it
does not change the logging of the program that imports it. Below the configured level,
logging calls are no-ops of the filtering bound logger (they cost a method call).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

__all__ = ["LogFormat", "LogLevel", "make_logger"]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["console", "json"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (which tests may swap)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def make_logger(level: str = "warning", fmt: str = "console") -> Any:
    """A structlog bound logger writing to stderr at ``level`` in ``fmt``."""
    if level not in _LEVELS:
        msg = f"unknown log_level {level!r}; use one of {', '.join(_LEVELS)}"
        raise ValueError(msg)
    if fmt not in ("console", "json"):
        msg = f"unknown log_format {fmt!r}; use 'console' or 'json'"
        raise ValueError(msg)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.wrap_logger(
        _StderrLogger(),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        cache_logger_on_first_use=True,
    ).bind(logger="pyworkflow")
