"""FileStorageBackend: which OSErrors are transient (a retry may cure them), what a failed
append leaves behind (nothing), and a durable run that rides out a full disk."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import (
    RunStatus,
    StorageError,
    TransientStorageError,
    configure,
    get_workflow_events,
    get_workflow_run,
    start,
)
from pyworkflow._core._events import Event, StepCompleted, StepStarted
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._errors import TRANSIENT_ERRNOS, storage_error_from_oserror
from pyworkflow.storage._file import _append as _file_append
from pyworkflow.testing import ManualClock
from tests.flows import calls, three_parts

from .helpers import History, raw, started


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code), "/data/events/run_1.jsonl")


# -- the classification -------------------------------------------------------------------------
TRANSIENT = ["EAGAIN", "EWOULDBLOCK", "EINTR", "EBUSY", "ENOSPC", "EDQUOT", "ETIMEDOUT", "ENOLCK"]
TRANSIENT += ["EMFILE", "ENFILE", "ENOMEM", "ECONNREFUSED", "ECONNRESET"]
PERMANENT = ["EIO", "EACCES", "EPERM", "EROFS", "ENOENT", "ENOTDIR", "EISDIR", "EINVAL", "EBADF"]


@pytest.mark.parametrize("name", TRANSIENT)
def test_oserrors_a_retry_can_cure_are_transient(name: str) -> None:
    code = getattr(errno, name)
    assert code in TRANSIENT_ERRNOS
    error = storage_error_from_oserror("could not append", oserror(code), "check the folder")
    assert type(error) is TransientStorageError and error.retriable
    assert str(error).startswith(f"could not append: {os.strerror(code)} (/data/events/")


@pytest.mark.parametrize("name", PERMANENT)
def test_other_oserrors_are_permanent(name: str) -> None:
    code = getattr(errno, name)
    error = storage_error_from_oserror("could not append", oserror(code), "check the folder")
    assert type(error) is StorageError and not error.retriable
    assert str(error).startswith(f"could not append: {os.strerror(code)} (/data/events/")


def test_messages_say_what_to_do() -> None:
    def message(code: int) -> str:
        return str(storage_error_from_oserror("could not x", oserror(code), "check the folder"))

    assert "free disk space" in message(errno.ENOSPC)
    assert "a retry may succeed" in message(errno.EAGAIN)
    assert "check the disk" in message(errno.EIO)
    assert message(errno.EACCES).endswith("; check the folder")
    plain = storage_error_from_oserror("could not x", OSError("odd"), "check the folder")
    assert str(plain) == "could not x: odd; check the folder" and not plain.retriable


# -- a failed append --------------------------------------------------------------------------
async def three_events(backend: FileStorageBackend) -> History:
    h = History()
    started(h)
    h.step(StepStarted, 1, "step1")
    h.step(StepCompleted, 1, "step1", result=raw(1))
    for event in h.events:
        await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)
    return h


def failing_write(code: int, calls: list[int]) -> Any:
    def write_all(fd: int, data: bytes) -> None:
        calls.append(len(data))
        os.write(fd, data[: len(data) // 2])  # half of it, then the error
        raise OSError(code, os.strerror(code))

    return write_all


@pytest.mark.parametrize("durability", ["always", "none"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EAGAIN])
async def test_a_disk_full_append_is_transient_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: Any, code: int
) -> None:
    backend = FileStorageBackend(tmp_path, durability=durability)
    h = await three_events(backend)
    log = tmp_path / "events" / f"{h.run_id}.jsonl"
    before = log.read_bytes()
    batch = [h.step(StepStarted, 2, "step2"), h.step(StepCompleted, 2, "step2", result=raw(2))]

    calls: list[int] = []
    monkeypatch.setattr(_file_append, "write_all", failing_write(code, calls))
    with pytest.raises(TransientStorageError, match="could not append to run") as info:
        await backend.append(h.run_id, batch, expected_sequence=3)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == code
    assert calls  # the write was tried
    assert log.read_bytes() == before  # nothing half-written
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events[:3]
    monkeypatch.undo()

    await backend.append(h.run_id, batch, expected_sequence=3)  # the same append, retried
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    assert await backend.read(h.run_id) == h.events


async def test_a_refused_append_is_permanent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await three_events(backend)
    before = (tmp_path / "events" / f"{h.run_id}.jsonl").read_bytes()
    monkeypatch.setattr(_file_append, "write_all", failing_write(errno.EACCES, []))
    with pytest.raises(StorageError, match="Permission denied") as info:
        await backend.append(h.run_id, [h.step(StepStarted, 2, "step2")], expected_sequence=3)
    assert not isinstance(info.value, TransientStorageError)
    assert (tmp_path / "events" / f"{h.run_id}.jsonl").read_bytes() == before


async def test_an_append_that_cannot_be_cut_off_is_permanent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write whose undo fails too may leave part of the append: no blind retry."""
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await three_events(backend)

    def ftruncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_file_append, "write_all", failing_write(errno.ENOSPC, []))
    monkeypatch.setattr(os, "ftruncate", ftruncate)
    with pytest.raises(StorageError, match="could not be cut off the log") as info:
        await backend.append(h.run_id, [h.step(StepStarted, 2, "step2")], expected_sequence=3)
    assert not info.value.retriable
    assert "check the disk" in str(info.value)


# -- end to end: a durable run rides out a full disk --------------------------------------------


class DiskFullFor:
    """Fails the first ``times`` writes of every append that holds an event of step
    ``checkpoint`` with ENOSPC (after writing half the bytes, as a full disk does)."""

    def __init__(self, checkpoint: int, times: int) -> None:
        self.checkpoint, self.times = checkpoint, times
        self.failed: Counter[str] = Counter()
        self.real = _file_append.write_all

    def __call__(self, fd: int, data: bytes) -> None:
        lines = [json.loads(line) for line in data.splitlines()]
        kinds = [e["type"] for e in lines if e.get("checkpoint") == self.checkpoint]
        if kinds and self.failed[kinds[0]] < self.times:
            self.failed[kinds[0]] += 1
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.real(fd, data)


@pytest.mark.parametrize("durability", ["always", "none"])
async def test_a_run_rides_out_a_full_disk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    durability: Any,
) -> None:
    calls.clear()
    configure(clock=ManualClock())
    storage = FileStorageBackend(tmp_path, durability=durability)
    disk = DiskFullFor(checkpoint=2, times=2)
    monkeypatch.setattr(_file_append, "write_all", disk)

    run_id = await start(three_parts, storage=storage)

    # both appends of step b (its start; its outcome) failed twice each, then went through
    assert disk.failed == {"step_started": 2, "step_completed": 2}
    err = capsys.readouterr().err
    assert err.count("storage_retry") == 4 and "storage_failed" not in err  # never gave up
    run = await get_workflow_run(run_id, storage=storage)
    assert run is not None and run.status is RunStatus.COMPLETED, run
    assert run.result == {"done": ["A", "B", "C"], "seen": []}
    assert calls == {"a": 1, "b": 1, "c": 1}  # each body ran exactly once
    monkeypatch.undo()
    events: list[Event] = await get_workflow_events(run_id, storage=FileStorageBackend(tmp_path))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [(e.type.value, getattr(e, "checkpoint", None)) for e in events]
    assert kinds.count(("step_started", 2)) == 1
    assert kinds.count(("step_completed", 2)) == 1
    assert kinds[-1] == ("workflow_completed", None)
