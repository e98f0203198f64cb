"""The due-runs index of FileStorageBackend: ``.due/``, runs by the time they need an executor.

``due_runs(until)`` lists only the folders of minutes up to ``until``, so a process (a
restarted one too) finds the runs to wake without reading every run. Layout (UTC; every
name sorts as its time)::

    .due/
    ├── .built                                      every run in events/ has its entry
    └── 20250101/                                   a day
        └── 1015/                                   a minute of it
            └── 20250101T101530.123456Z_run_01ab    an entry (an empty file): due, run id

A run has one entry, at ``due_at(run)`` (``pyworkflow._core._projection``), while it is due
at all. Entries change only when the run's due time does (a status change, a hook payload or
a cancellation while suspended, never a step), under the run's exclusive append lock, so
two processes never update one run's entries at once. Invariants (see ``_file_store``):

I1. Superset. The entry of the new due time is made, and unless durability is ``"none"``
    fsynced with its folder, *before* the log line that makes it due is written; the entry
    of the old due time is removed *after*. A crash at any point leaves the run's current
    entry in place, and at most one stale entry besides.
I2. Readers repair. ``due_runs`` checks every entry it returns against the run's projection
    (its run file and log tail), and fixes a stale one under the exclusive lock. A stale
    entry costs one check when it comes due, then it is gone.

Power loss: with durability ``"always"`` (entries and log fsynced in I1's order) no entry
is lost; with ``"batch"`` the newest entry of a run is always on disk, and if the log lost
the event it was made for, that was a ``workflow_started``/``_resumed`` (the only unsynced
events that move a run), due when written: the first ``due_runs`` after the restart meets
it and I2 gives the run its entry back. With ``"none"`` nothing is fsynced and an entry
may be lost while its log line survives: delete ``.due/.built``, and a backend opened after
that indexes every run again at its first ``due_runs``.

Folders: a reader that finds a minute (or day) folder empty removes it, and so does a
writer that empties the folder of a minute already past (``rmdir`` fails on a folder that
isn't empty, so no entry is lost); a writer that finds its folder gone makes it again.
A storage folder made by a version without the index (``.due/`` or ``.built`` missing) is
indexed once, by the first ``due_runs``, from every log in ``events/``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from ._io import SyncSet, fsync_dir
from ._marker import IndexFolder
from ._paths import is_id

__all__ = ["DueFolder"]

_ENTRY = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)\.(\d{6})Z_(.+)")
_DAY = re.compile(r"\d{8}")
_MINUTE = re.compile(r"\d{4}")
_TRIES = 10
"""Attempts to make an entry whose folder another process keeps removing (emptied)."""


def _stamp(moment: datetime) -> str:
    """``moment`` (UTC) as ``YYYYMMDDTHHMMSS.ffffffZ``: fixed width, sorts as time."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


def _parse(name: str) -> tuple[datetime, str] | None:
    """``(due, run_id)`` of an entry's name; None for anything else."""
    match = _ENTRY.fullmatch(name)
    if match is None or not is_id(match[8]):
        return None
    year, month, day, hour, minute, second, micro = map(int, match.groups()[:7])
    try:
        due = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        return None
    return due, match[8]


def _sorted(folder: str, pattern: re.Pattern[str] | None = None) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []  # emptied and removed by another process
    return sorted(n for n in names if pattern is None or pattern.fullmatch(n))


def _rmdir(folder: str) -> bool:
    """Remove ``folder`` if it is empty; whether it was removed."""
    try:
        os.rmdir(folder)
    except OSError:
        return False  # not empty (or gone already)
    return True


class DueFolder(IndexFolder):
    """The ``.due/`` folder of one storage folder. Synchronous; raises ``OSError``."""

    def paths(self, due: datetime, run_id: str) -> tuple[str, str, str]:
        """The day folder, minute folder and entry path of ``(due, run_id)``."""
        stamp = _stamp(due)
        day = f"{self.root}/{stamp[:8]}"
        minute = f"{day}/{stamp[9:13]}"
        return day, minute, f"{minute}/{stamp}_{run_id}"

    # -- entries ------------------------------------------------------------------------
    def has(self, due: datetime, run_id: str) -> bool:
        return os.path.exists(self.paths(due, run_id)[2])

    def add(self, due: datetime, run_id: str, *, sync: bool, later: SyncSet | None = None) -> None:
        """Make the entry (a no-op if it exists); with ``sync``, fsync it and the folders
        made for it, or, given ``later``, add those folders to it (a group commit's)."""
        day, minute, path = self.paths(due, run_id)
        changed = {minute}  # the folders whose names must be made durable
        for _ in range(_TRIES):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                changed |= {day} if os.path.isdir(day) else {day, self.root}
                # Another writer may empty and remove the day folder between the two
                # mkdirs of makedirs: then try again.
                # makedirs raises FileExistsError too when the folder vanishes after its
                # mkdir found it there.
                with contextlib.suppress(FileNotFoundError, FileExistsError):
                    os.makedirs(minute, exist_ok=True)
                continue
            os.close(fd)
            if sync and later is not None:
                later.folders |= changed
            elif sync:
                for folder in changed:
                    fsync_dir(folder)
            return
        raise FileNotFoundError(errno.ENOENT, "due index folder keeps vanishing", minute)

    def remove(self, due: datetime, run_id: str) -> None:
        """Remove the entry if it is there, and its minute and day folders if now empty and
        past: the folder of the minute under way is left to the next run's entry (a run is
        due at its start while it runs: removing and making that folder again for every
        short run costs two more metadata writes a run); ``scan`` removes it later."""
        day, minute, path = self.paths(due, run_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        if _stamp(due)[:13] >= _stamp(datetime.now(UTC))[:13]:
            return  # this minute, or one to come
        if _rmdir(minute):
            _rmdir(day)

    def scan(self, until: datetime) -> Iterator[tuple[datetime, str]]:
        """Entries due at or before ``until``, in ``(due, run_id)`` order. Reads only the
        folders of days and minutes up to ``until``; removes those it finds empty."""
        last = _stamp(until)
        last_day, last_minute = last[:8], last[9:13]
        for day in _sorted(self.root, _DAY):
            if day > last_day:
                return
            day_folder = f"{self.root}/{day}"
            minutes = _sorted(day_folder, _MINUTE)
            if not minutes:
                _rmdir(day_folder)
            for minute in minutes:
                if day == last_day and minute > last_minute:
                    return
                folder = f"{day_folder}/{minute}"
                names = _sorted(folder)
                if not names and _rmdir(folder):
                    continue
                for name in names:
                    parsed = _parse(name)
                    if parsed is None:
                        continue
                    if parsed[0] > until:
                        return  # sorted: every later entry is later still
                    yield parsed
