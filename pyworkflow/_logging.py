"""Logging: structlog key-value events on stderr, quiet (warnings only) by default.

The library keeps its own logger pipeline and never calls ``structlog.configure``, so it
does not change the logging of the program that imports it. :class:`Logger` checks the
level first: a call below it costs one comparison, and structlog itself is imported only
when the first line is actually written (it is most of the package's import time).

:class:`FollowingLogger` serves objects that outlive a ``configure()`` call: it writes
through the logger the process configuration holds at the moment of each call
(``PROCESS_LOG``, which ``configure()`` sets: storage backends sit below the configuration
layer and must not import it). A chatty library's stdlib ``logging`` records reach such a
logger through ``_log_relay.LibraryLogRelay`` (its own module: only the Kafka backend needs
stdlib ``logging``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, Literal

__all__ = [
    "PROCESS_LOG",
    "FollowingLogger",
    "LogFormat",
    "LogLevel",
    "Logger",
    "make_logger",
]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["console", "json"]

_LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (which tests may swap)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _Pipeline:
    """The structlog logger behind every :class:`Logger` of one configuration, built lazily."""

    __slots__ = ("_fmt", "_impl")

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._impl: Any = None

    def get(self) -> Any:
        if self._impl is None:
            structlog = importlib.import_module("structlog")  # lazily: see the module doc
            renderer: Any = (
                structlog.processors.JSONRenderer()
                if self._fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False)
            )
            self._impl = structlog.wrap_logger(
                _StderrLogger(),
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    renderer,
                ],
            ).bind(logger="pyworkflow")
        return self._impl


class Logger:
    """A bound logger with structlog's calling convention: ``log.info("event", key=value)``."""

    __slots__ = ("_context", "_level", "_pipeline")

    def __init__(self, level: int, pipeline: _Pipeline, context: dict[str, Any]) -> None:
        self._level = level
        self._pipeline = pipeline
        self._context = context

    def bind(self, **values: Any) -> Logger:
        """A logger that adds ``values`` to every line."""
        return Logger(self._level, self._pipeline, {**self._context, **values})

    def _emit(self, level: int, method: str, event: str, values: dict[str, Any]) -> None:
        if level >= self._level:
            # A key both bound and given here takes the value given (structlog's rule);
            # spread twice, it would raise TypeError in the caller: a workflow's, say.
            getattr(self._pipeline.get(), method)(event, **{**self._context, **values})

    def enabled(self, level: int) -> bool:
        """Whether a line at ``level`` (10 = debug ... 50 = critical) would be written."""
        return level >= self._level

    def log(self, level: int, event: str, **values: Any) -> None:
        """A line at a numeric ``level`` (stdlib ``logging`` numbers), e.g. a relayed one."""
        self._emit(level, _METHODS[_nearest(level)], event, values)

    def debug(self, event: str, **values: Any) -> None:
        if self._level <= 10:  # tested here too: quiet lines cost one comparison
            self._emit(10, "debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        if self._level <= 20:  # tested here too: quiet lines cost one comparison
            self._emit(20, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        if self._level <= 30:  # tested here too: quiet lines cost one comparison
            self._emit(30, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        if self._level <= 40:  # tested here too: quiet lines cost one comparison
            self._emit(40, "error", event, values)

    def critical(self, event: str, **values: Any) -> None:
        if self._level <= 50:  # tested here too: quiet lines cost one comparison
            self._emit(50, "critical", event, values)


def make_logger(level: str = "warning", fmt: str = "console") -> Logger:
    """A logger writing to stderr at ``level`` (and above) in ``fmt``."""
    if level not in _LEVELS:
        msg = f"unknown log_level {level!r}; use one of {', '.join(_LEVELS)}"
        raise ValueError(msg)
    if fmt not in ("console", "json"):
        msg = f"unknown log_format {fmt!r}; use 'console' or 'json'"
        raise ValueError(msg)
    return Logger(_LEVELS[level], _Pipeline(fmt), {})


_METHODS: dict[int, str] = {number: name for name, number in _LEVELS.items()}


def _nearest(level: int) -> int:
    """The highest of our levels at or below ``level`` (stdlib levels may be custom)."""
    return max((n for n in _METHODS if n <= level), default=10)


def _process_logger() -> Logger:
    return PROCESS_LOG.logger


class ProcessLog:
    """The cell holding the logger of the process configuration (see ``PROCESS_LOG``)."""

    __slots__ = ("logger",)

    def __init__(self) -> None:
        self.logger = make_logger()


PROCESS_LOG = ProcessLog()
"""The logger ``configure(log_level=..., log_format=...)`` last set, for the layers below
the configuration (storage backends) to follow. Written only by ``pyworkflow._config``,
alongside its own settings."""


class FollowingLogger:
    """A logger that writes through ``source()`` at each call, by default the process
    configuration's logger (``PROCESS_LOG``), so that a ``configure(log_level=...)`` made
    after this object was created still governs it (a storage backend is usually created
    first, then handed to ``configure``)."""

    __slots__ = ("_context", "_source")

    def __init__(
        self,
        source: Callable[[], Logger] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self._source = source or _process_logger
        self._context = context or {}

    def bind(self, **values: Any) -> FollowingLogger:
        return FollowingLogger(self._source, {**self._context, **values})

    def enabled(self, level: int) -> bool:
        return self._source().enabled(level)

    def log(self, level: int, event: str, **values: Any) -> None:
        base = self._source()
        if base.enabled(level):
            base.log(level, event, **{**self._context, **values})  # as Logger._emit

    def debug(self, event: str, **values: Any) -> None:
        self.log(10, event, **values)

    def info(self, event: str, **values: Any) -> None:
        self.log(20, event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self.log(30, event, **values)

    def error(self, event: str, **values: Any) -> None:
        self.log(40, event, **values)

    def critical(self, event: str, **values: Any) -> None:
        self.log(50, event, **values)
