"""Logging: structlog key-value events on stderr, quiet (warnings only) by default.

The library keeps its own logger pipeline and never calls ``structlog.configure``, so it
does not change the logging of the program that imports it. :class:`Logger` checks the
level first: a call below it costs one comparison, and structlog itself is imported only
when the first line is actually written (it is most of the package's import time).

Two helpers serve objects that outlive a ``configure()`` call or host a chatty library:
:class:`FollowingLogger` writes through the logger the process configuration holds at the
moment of each call (``PROCESS_LOG``, which ``configure()`` sets: storage backends sit below
the configuration layer and must not import it), and :class:`LibraryLogRelay` takes a
library's stdlib ``logging`` records made on one thread (aiokafka's, on the Kafka backend's
loop thread) and writes them through such a logger, one line per message per interval
instead of one per retry.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "PROCESS_LOG",
    "FollowingLogger",
    "LibraryLogRelay",
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
            getattr(self._pipeline.get(), method)(event, **self._context, **values)

    def enabled(self, level: int) -> bool:
        """Whether a line at ``level`` (10 = debug ... 50 = critical) would be written."""
        return level >= self._level

    def log(self, level: int, event: str, **values: Any) -> None:
        """A line at a numeric ``level`` (stdlib ``logging`` numbers), e.g. a relayed one."""
        self._emit(level, _METHODS[_nearest(level)], event, values)

    def debug(self, event: str, **values: Any) -> None:
        self._emit(10, "debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit(20, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit(30, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit(40, "error", event, values)

    def critical(self, event: str, **values: Any) -> None:
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


class _Sink(Protocol):
    def enabled(self, level: int) -> bool: ...

    def log(self, level: int, event: str, **values: Any) -> None: ...


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
            base.log(level, event, **self._context, **values)

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


@dataclass(slots=True)
class _Repeats:
    last_written: float
    suppressed: int = 0
    level: int = 0
    message: str = ""


class LibraryLogRelay(logging.Filter):
    """Takes a library's stdlib log records made on one thread out of stdlib ``logging`` and
    writes them through a pyworkflow logger, deduplicated.

    Installed as a filter on each of the library's loggers (a logger's filters see the
    records made on that logger, before any handler, so nothing reaches the root logger or
    Python's last-resort stderr handler). A record made on another thread passes on untouched:
    the program's own use of the library keeps its own logging. So does every record when the
    program configured the library's logging itself: a handler on one of its loggers, or
    ``propagate = False`` (e.g. ``logging.getLogger("aiokafka").propagate = False`` to
    silence it); the program's choice wins over the relay's.

    Deduplication, per message template (logger, level and unformatted message): the first
    record is written at once; repeats within ``interval`` seconds are counted, and the first
    repeat after it is written with ``repeated=N`` (the records it stands for). A broker that
    is down for a minute thus costs a few lines, not one per reconnect attempt. ``detach()``
    writes one last line for each template with uncounted repeats.

    The level is the configured one (``configure(log_level=...)`` through the sink); records
    below the library logger's own stdlib level (WARNING unless the program lowers it) are
    never made by the library, so they never reach the relay.
    """

    def __init__(
        self,
        log: _Sink,
        *,
        library: str,
        event: str,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._log = log
        self._library = library
        self._event = event
        self._interval = interval
        self._clock = clock
        self._thread: int | None = None
        self._loggers: list[logging.Logger] = []
        self._repeats: dict[tuple[str, int, str], _Repeats] = {}
        self._lock = threading.Lock()

    def attach(self, thread: int | None = None) -> None:
        """Relay the records made on ``thread`` (default: the calling thread) by every logger
        of the library that exists now (import the library first)."""
        self._thread = threading.get_ident() if thread is None else thread
        manager = logging.Logger.manager
        prefix = self._library + "."
        for name, logger in list(manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and (
                name == self._library or name.startswith(prefix)
            ):
                logger.addFilter(self)
                self._loggers.append(logger)

    def detach(self) -> None:
        """Stop relaying, and write the repeats not written yet. Idempotent."""
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()
        with self._lock:
            pending = [r for r in self._repeats.values() if r.suppressed]
            self._repeats.clear()
        for repeats in pending:
            self._write(repeats.level, repeats.message, repeats.suppressed, None)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self._thread or self._configured_by_program(record.name):
            return True
        if not self._log.enabled(record.levelno):
            return False
        template = record.msg if isinstance(record.msg, str) else repr(record.msg)
        key = (record.name, record.levelno, template)
        message = f"{record.name}: {record.getMessage()}"
        now = self._clock()
        with self._lock:
            repeats = self._repeats.get(key)
            if repeats is None:
                self._repeats[key] = _Repeats(now, level=record.levelno, message=message)
                count = 0
            elif now - repeats.last_written < self._interval:
                repeats.suppressed += 1
                repeats.message = message
                return False
            else:
                count, repeats.suppressed, repeats.last_written = repeats.suppressed, 0, now
        error = record.exc_info[1] if record.exc_info else None
        self._write(record.levelno, message, count, error)
        return False

    def _configured_by_program(self, name: str) -> bool:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None and (
            logger.name == self._library or logger.name.startswith(self._library + ".")
        ):
            if logger.handlers or not logger.propagate:
                return True
            logger = logger.parent
        return False

    def _write(self, level: int, message: str, repeated: int, error: BaseException | None) -> None:
        values: dict[str, Any] = {"message": message}
        if repeated:
            values["repeated"] = repeated
        if error is not None:
            values["error"] = repr(error)
        self._log.log(level, self._event, **values)
