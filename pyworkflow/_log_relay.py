"""Relaying a library's stdlib ``logging`` records through a pyworkflow logger.

Apart from ``_logging`` so that only what hosts such a library (the Kafka backend, for
aiokafka) imports stdlib ``logging``: ``import pyworkflow`` does not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LibraryLogRelay"]


class _Sink(Protocol):
    def enabled(self, level: int) -> bool: ...

    def log(self, level: int, event: str, **values: Any) -> None: ...


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
