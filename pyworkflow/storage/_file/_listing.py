"""``list_runs`` of FileStorageBackend: runs found by their event logs, kept cheap.

A run exists once its log holds a ``workflow_started`` event, whether or not its run file
was written yet (a crash can come between the two), so the listing walks ``events/``, not
``runs/``. Each listing costs one ``scandir`` and one ``stat`` per log; only a log whose
(inode, size, mtime) changed since the previous listing is projected again, which costs a
fold of its new lines (or, the first time, of the lines after its run file's ``log_end``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..._core._records import WorkflowRun
from ..._exceptions import CorruptRecordError
from ._paths import Layout, is_id

__all__ = ["RunListing"]

_Key = tuple[int, int, int]


class RunListing:
    """The run records of one storage folder, for ``list_runs``.

    Args:
        layout: the folder.
        project_run: a run's current record (None: its log has no events yet); raises
            ``CorruptRecordError`` if its run file is corrupt.
        log: the backend's logger.
    """

    def __init__(
        self, layout: Layout, project_run: Callable[[str], WorkflowRun | None], log: Any
    ) -> None:
        self._layout = layout
        self._project_run = project_run
        self._log = log
        self._known: dict[str, tuple[_Key, _Key | None, WorkflowRun | None]] = {}
        """run id -> (log key, run file key if its record was corrupt, record)."""

    def records(self) -> list[WorkflowRun]:
        """Every run's current record; runs with a corrupt run file are skipped (reported
        once per version of the file)."""
        fresh: dict[str, tuple[_Key, _Key | None, WorkflowRun | None]] = {}
        try:
            entries = list(os.scandir(self._layout.events))
        except FileNotFoundError:
            return []
        for entry in entries:
            run_id = entry.name[: -len(".jsonl")]
            if not entry.name.endswith(".jsonl") or not is_id(run_id):
                continue  # torn tails set aside (dot-files), stray files
            try:
                key = _key(entry.stat())
            except FileNotFoundError:
                continue
            known = self._known.get(run_id)
            if known is None or known[0] != key or known[1] != self._corrupt_key(known, run_id):
                known = self._project(run_id, key)
            fresh[run_id] = known
        self._known = fresh
        return [record for _, _, record in fresh.values() if record is not None]

    def _project(self, run_id: str, key: _Key) -> tuple[_Key, _Key | None, WorkflowRun | None]:
        try:
            return key, None, self._project_run(run_id)
        except CorruptRecordError as exc:
            self._log.warning("corrupt_run_record_skipped", run_id=run_id, error=str(exc))
            return key, self._run_file_key(run_id), None

    def _corrupt_key(
        self, known: tuple[_Key, _Key | None, WorkflowRun | None], run_id: str
    ) -> _Key | None:
        """The run file's key, checked only for runs skipped for a corrupt run file."""
        return None if known[1] is None else self._run_file_key(run_id)

    def _run_file_key(self, run_id: str) -> _Key:
        try:
            return _key(os.stat(self._layout.run(run_id)))
        except FileNotFoundError:
            return (0, 0, 0)


def _key(st: os.stat_result) -> _Key:
    return st.st_ino, st.st_size, st.st_mtime_ns
