"""Record files of FileStorageBackend: pretty JSON on disk, decoded back into the structs.

Run, step and hook records are projections of the event logs (``project()``), kept as files
for people and for fast cold starts; they can always be rebuilt from
``events/{run_id}.jsonl``. A run file holds the run record plus one field of its own,
``log_end``: the offset in the run's log just past the line of event ``last_sequence``, so a
reader folds exactly the log after it onto the record (see ``_file_view``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

import msgspec

from ..._core._records import HookRecord, StepRecord, WorkflowRun
from ..._exceptions import CorruptRecordError
from ._io import read_bytes
from ._log import Lines

__all__ = [
    "CLAIM",
    "HOOK",
    "RUN",
    "STEP",
    "Claim",
    "Lru",
    "RecordType",
    "encode_record",
    "encode_run",
    "load_lines",
    "load_record",
    "load_run",
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


class _LogEnd(msgspec.Struct):
    log_end: int = -1
    """-1: a run file without it (written by an older version): not usable as a start."""


_LOG_END = msgspec.json.Decoder(_LogEnd)


class _Lines(msgspec.Struct):
    run_id: str = ""
    last_sequence: int = 0
    log_end: int = -1


_LINES = msgspec.json.Decoder(_Lines)


def encode_record(record: msgspec.Struct) -> bytes:
    """A record as indented JSON, for people reading the folder."""
    return msgspec.json.format(_ENCODER.encode(record), indent=2) + b"\n"


def encode_run(run: WorkflowRun, log_end: int) -> bytes:
    """A run file: the run record's fields, then ``log_end``, as indented JSON."""
    body = _ENCODER.encode(run)  # a non-empty JSON object: "{...}"
    return msgspec.json.format(body[:-1] + b',"log_end":%d}' % log_end, indent=2) + b"\n"


def load_run(path: str) -> tuple[WorkflowRun, int] | None:
    """The run record in the run file at ``path`` and its ``log_end`` (-1 if it has none);
    None if there is no such file.

    Raises:
        CorruptRecordError: the file is empty or not a valid run record.
    """
    data = read_bytes(path)
    if data is None:
        return None
    run = _decode(path, data, RUN)
    try:
        log_end = _LOG_END.decode(data).log_end
    except msgspec.DecodeError:
        log_end = -1
    return run, log_end


def load_lines(path: str, run_id: str) -> Lines | None:
    """What the run file at ``path`` says of the log it was projected from: its bytes
    ``[0, log_end)`` hold the lines of events ``1..last_sequence`` (a hint for decoding,
    ``_file_log``). None if there is no usable run file (missing, corrupt, older)."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        lines = _LINES.decode(data)
    except msgspec.DecodeError:
        return None
    if lines.run_id != run_id or lines.log_end <= 0 or lines.last_sequence <= 0:
        return None
    return Lines(lines.log_end, lines.last_sequence)


def load_record(path: str, kind: RecordType[T]) -> T | None:
    """Decode the record file at ``path``; None if it does not exist.

    Raises:
        CorruptRecordError: the file is empty or not a valid record, naming it and what to do.
    """
    data = read_bytes(path)
    if data is None:
        return None
    return _decode(path, data, kind)


def _decode(path: str, data: bytes, kind: RecordType[T]) -> T:
    try:
        return kind.decoder.decode(data)
    except msgspec.DecodeError as exc:
        reason = "it is empty" if not data else str(exc)
        stem = os.path.splitext(os.path.basename(path))[0]
        msg = f"{kind.what} {path} is corrupt ({reason}); {kind.remedy.replace('{name}', stem)}"
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
