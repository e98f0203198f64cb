"""Record files of FileStorageBackend: pretty JSON on disk, decoded back into the structs.

Run, step and hook records are projections of the event logs (``project()``), kept as files
for queries; they can always be rebuilt from ``events/{run_id}.jsonl``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from .._exceptions import CorruptRecordError
from .._records import HookRecord, StepRecord, WorkflowRun
from ._file_io import read_bytes

__all__ = [
    "CLAIM",
    "HOOK",
    "RUN",
    "STEP",
    "Claim",
    "Lru",
    "RecordType",
    "RunListing",
    "encode_record",
    "load_record",
]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """An idempotency claim file: ``idempotency/{sha256(key)}.json``."""

    key: str
    run_id: str


class RecordType(Generic[T]):
    """How to decode one kind of record file, and what to tell the user if it is corrupt."""

    def __init__(self, tp: type[T], what: str, remedy: str) -> None:
        self.decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(tp)
        self.what = what
        self.remedy = remedy


_REBUILT = (
    "records are projections of the run's event log in events/: delete this file and the "
    "run's record in runs/, and the run's records are rebuilt from its log the next time "
    "the run is read or resumed"
)
RUN = RecordType(
    WorkflowRun,
    "run record",
    "it is a projection of the run's event log events/{name}.jsonl: delete the file and "
    "it is rebuilt from the log the next time the run is read or resumed",
)
STEP = RecordType(StepRecord, "step record", _REBUILT)
HOOK = RecordType(HookRecord, "hook record", _REBUILT)
CLAIM = RecordType(
    Claim,
    "idempotency claim",
    "delete it only if no run was started with that key (the key can then be claimed again)",
)

_ENCODER = msgspec.json.Encoder()


def encode_record(record: msgspec.Struct) -> bytes:
    """A record as indented JSON, for people reading the folder."""
    return msgspec.json.format(_ENCODER.encode(record), indent=2) + b"\n"


def load_record(path: Path, kind: RecordType[T]) -> T | None:
    """Decode the record file at ``path``; None if it does not exist.

    Raises:
        CorruptRecordError: the file is empty or not a valid record, naming it and what to do.
    """
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return kind.decoder.decode(data)
    except msgspec.DecodeError as exc:
        reason = "it is empty" if not data else str(exc)
        remedy = kind.remedy.replace("{name}", path.stem)
        msg = f"{kind.what} {path} is corrupt ({reason}); {remedy}"
        raise CorruptRecordError(msg) from exc


class Lru(Generic[K, V]):
    """A small thread-safe least-recently-used map, so caches stay bounded."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._mutex = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._mutex:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._mutex:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._mutex:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._mutex:
            self._data.clear()


_FileKey = tuple[int, int, int]


class RunListing:
    """Run records for ``list_runs``: one ``scandir`` + one ``stat`` per run, and a parse
    only of the files that changed since the last listing (records are replaced by rename,
    so a new inode, mtime or size means new content)."""

    def __init__(self, runs_dir: Path, log: Any) -> None:
        self._dir = runs_dir
        self._log = log
        self._known: dict[str, tuple[_FileKey, WorkflowRun | None]] = {}

    def records(self) -> list[WorkflowRun]:
        """Every readable run record; corrupt ones are skipped (and reported once)."""
        fresh: dict[str, tuple[_FileKey, WorkflowRun | None]] = {}
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue  # temp files of writes in progress
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            known = self._known.get(name)
            if known is None or known[0] != key:
                known = (key, self._load(name))
            fresh[name] = known
        self._known = fresh
        return [record for _, record in fresh.values() if record is not None]

    def _load(self, name: str) -> WorkflowRun | None:
        try:
            return load_record(self._dir / name, RUN)
        except CorruptRecordError as exc:
            self._log.warning("corrupt_run_record_skipped", error=str(exc))
            return None
