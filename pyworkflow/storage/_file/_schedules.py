"""Schedule records of FileStorageBackend: ``schedules/{schedule_id}.json``, one readable
JSON file per schedule.

A save is a compare-and-set on the record's ``revision``: under an exclusive ``flock`` on
``.locks/schedules.lock`` (across processes; dropped by the OS if the holder dies) it reads
the stored revision, then replaces the file atomically (temp file + ``os.replace``). Readers
take no lock: a replace is atomic, so they see the old file or the new one.
"""

from __future__ import annotations

import os
from contextlib import suppress

from ..._core._schedule import Schedule
from ..._exceptions import CorruptRecordError
from ..._logging import Logger
from .._port import check_schedule_write
from ._io import flocked, fsync_dir, write_atomic
from ._paths import check_id, is_id
from ._records import RecordType, encode_record, load_record

__all__ = ["ScheduleFiles"]

_SCHEDULE = RecordType(
    Schedule,
    "schedule record",
    "it is the schedule's only copy (not a projection of a log): fix its JSON by hand, or "
    "delete it and create the schedule again (its runs stay)",
)


class ScheduleFiles:
    """The ``schedules/`` folder of one storage directory."""

    def __init__(self, base: str, locks: str, *, sync: bool, log: Logger) -> None:
        self.folder = os.path.join(base, "schedules")
        self._locks = locks
        self._sync = sync
        self._log = log

    def path(self, schedule_id: str) -> str:
        return f"{self.folder}/{check_id('schedule id', schedule_id)}.json"

    # Each call blocks (the backend runs it in a worker thread: ``inline`` is always False).
    def get(self, schedule_id: str, *, inline: bool = False) -> Schedule | None:
        """The record, or None.

        Raises:
            CorruptRecordError: the file does not decode (named, with what to do).
        """
        return load_record(self.path(schedule_id), _SCHEDULE)

    def all(self, *, inline: bool = False) -> list[Schedule]:
        """Every decodable record, by id (a corrupt one is skipped with a warning)."""
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext != ".json" or not is_id(stem):
                continue  # temp files are dot-files
            try:
                record = self.get(stem)
            except CorruptRecordError as exc:
                self._log.warning("schedule_record_corrupt", error=str(exc))
                continue
            if record is not None:
                found.append(record)
        return found

    def save(self, schedule: Schedule, *, inline: bool = False) -> None:
        """Compare-and-set (see the module docstring).

        Raises:
            ConflictError: the stored revision is not ``schedule.revision - 1``.
        """
        path = self.path(schedule.schedule_id)
        os.makedirs(self.folder, exist_ok=True)
        os.makedirs(self._locks, exist_ok=True)
        with flocked(f"{self._locks}/schedules.lock", exclusive=True, wait=True):
            check_schedule_write(schedule, self.get(schedule.schedule_id))
            write_atomic(path, encode_record(schedule), sync=self._sync)
            if self._sync and schedule.revision == 1:
                fsync_dir(self.folder)

    def delete(self, schedule_id: str, *, inline: bool = False) -> bool:
        path = self.path(schedule_id)
        with suppress(FileNotFoundError):
            os.makedirs(self._locks, exist_ok=True)
            with flocked(f"{self._locks}/schedules.lock", exclusive=True, wait=True):
                os.unlink(path)
                if self._sync:
                    fsync_dir(self.folder)
                return True
        return False
