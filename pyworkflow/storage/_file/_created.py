"""The creation index of FileStorageBackend: ``.created/``, runs by the time they started.

``list_runs`` pages newest first; run ids are random, so neither ``runs/`` nor ``events/``
sorts by age, and projecting every run to sort them costs seconds at 100,000 runs. This
index gives the order: one JSON line per run, in a file per minute of its start (UTC; every
name sorts as its time)::

    .created/
    ├── .built                  every run in events/ has its line
    └── 20250101/               a day
        └── 1015.jsonl          the runs that started in that minute, one line each:
                                {"at": "2025-01-01T10:15:30.123456+00:00",
                                 "run_id": "run_01ab...", "workflow": "orders.ship"}

Invariants:

I1. Superset. A run's line is appended (``O_APPEND``, one ``write``; fsynced like the log
    line when the append is) *before* its ``workflow_started`` is written to its log, under
    the run's append lock. A crash between the two leaves a line whose run does not exist:
    readers skip a run that ``get_run`` doesn't find. A line is never removed.
I2. ``at`` is the ``workflow_started`` timestamp, which is the run's ``created_at``: the order
    of lines is the order of ``list_runs`` (``_paging.sort_key``).

A page reads the day and minute names, then only the minute files from the newest (or the
cursor's) on until the page is full: its cost is the page's runs (one ``get_run`` each) plus
the minute files read, not the number of runs. A status filter reads records until it has a
page; a rare status costs up to a read of every run.

A storage folder made by a version without the index (``.built`` missing while logs exist)
is indexed once, by the first ``list_runs``, from every run's record. Power loss with
durability ``"none"`` may lose lines: delete ``.created/.built`` to index again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import msgspec

from ..._core._records import WorkflowRun
from ._io import SyncSet, fsync_dir, write_all
from ._marker import IndexFolder
from ._paths import is_id

__all__ = ["CreatedIndex", "Line"]


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One run of the index."""

    at: str
    run_id: str
    workflow: str


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Line)


def _names(folder: str, suffix: str, width: int) -> list[str]:
    """The names in ``folder`` of ``width`` digits (and ``suffix``), newest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    size = width + len(suffix)
    return sorted(
        (n for n in names if len(n) == size and n.endswith(suffix) and n[:width].isdigit()),
        reverse=True,
    )


class CreatedIndex(IndexFolder):
    """The ``.created/`` folder of one storage folder. Synchronous; raises ``OSError``."""

    def path(self, at: datetime) -> tuple[str, str]:
        """The day folder and minute file of a run started at ``at``."""
        m = at.astimezone(UTC)
        day = f"{self.root}/{m.year:04d}{m.month:02d}{m.day:02d}"
        return day, f"{day}/{m.hour:02d}{m.minute:02d}.jsonl"

    # -- the marker (``IndexFolder``) ---------------------------------------------------
    def build(self, records: Callable[[], Iterable[WorkflowRun]], *, sync: bool) -> None:
        """Index every run once, if the folder was made without the index (a run started
        meanwhile may get two lines: readers drop the second)."""
        if self.built():
            return
        for run in records():
            self._write(run.created_at, run.run_id, run.workflow_name, sync=False)
        if sync:
            for day in _names(self.root, "", 8):
                for minute in _names(f"{self.root}/{day}", ".jsonl", 4):
                    _fsync_file(f"{self.root}/{day}/{minute}")
        self.mark_built(sync=sync)

    # -- lines --------------------------------------------------------------------------
    def add(
        self, at: datetime, run_id: str, workflow: str, *, sync: bool, later: SyncSet | None = None
    ) -> None:
        """Append the run's line (I1: before its log line); with ``sync`` fsync it, or, given
        ``later``, add what to fsync to it (a group commit's)."""
        if sync and later is not None:
            day, path = self.path(at)
            made = not os.path.isdir(day)
            self._write(at, run_id, workflow, sync=False)
            later.files.add(path)
            later.folders |= {day, self.root} if made else {day}
            return
        self._write(at, run_id, workflow, sync=sync)

    def _write(self, at: datetime, run_id: str, workflow: str, *, sync: bool) -> None:
        day, path = self.path(at)
        line = _ENCODER.encode(Line(at=at.isoformat(), run_id=run_id, workflow=workflow))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
            made = False
        except FileNotFoundError:
            os.makedirs(day, exist_ok=True)
            fd = os.open(path, flags, 0o644)
            made = True
        try:
            # Led by a newline too: a line torn by a writer that died ends at the next one.
            write_all(fd, b"\n" + line + b"\n")
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if sync and made:
            fsync_dir(day)
            fsync_dir(self.root)

    def newest(self, before: tuple[str, str] | None = None) -> Iterator[Line]:
        """Lines newest first by ``(at, run_id)``, each run once; with ``before``, only those
        that sort before it (a page's cursor). Reads minute files one at a time, lazily."""
        last_minute = None
        if before is not None:
            try:
                last_minute = self.path(datetime.fromisoformat(before[0]))[1]
            except ValueError:
                last_minute = None
        seen: set[str] = set()
        for day in _names(self.root, "", 8):
            if last_minute is not None and f"{self.root}/{day}" > last_minute:
                continue
            for minute in _names(f"{self.root}/{day}", ".jsonl", 4):
                path = f"{self.root}/{day}/{minute}"
                if last_minute is not None and path > last_minute:
                    continue
                for line in sorted(_read(path), key=_key, reverse=True):
                    fresh = is_id(line.run_id) and line.run_id not in seen
                    if not fresh or (before is not None and _key(line) >= before):
                        continue
                    seen.add(line.run_id)
                    yield line


def _key(line: Line) -> tuple[str, str]:
    return line.at, line.run_id


def _read(path: str) -> list[Line]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines: list[Line] = []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        try:
            lines.append(_DECODER.decode(raw))
        except msgspec.DecodeError:
            continue  # torn by a writer that died before its log write: no such run
    return lines


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
