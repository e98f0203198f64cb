"""FileStorageBackend specifics: layout, torn and garbage lines, corrupt records, unsafe ids,
durability, caches (no rescans), two instances on one folder (like two processes).

Lazy record files (written at flush points only) are tested in ``test_file_lazy.py``."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from datetime import UTC
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from pyworkflow import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidTokenError,
    RunLockedError,
    RunStatus,
    StorageError,
    WorkflowRun,
)
from pyworkflow._core._events import (
    Event,
    HookCreated,
    StepCompleted,
    StepStarted,
    WorkflowCompleted,
    WorkflowResumed,
    WorkflowSuspended,
    encode_event,
)
from pyworkflow._core._projection import project
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._file import _append as _file_append
from pyworkflow.storage._file._commit import GroupCommit
from pyworkflow.storage._file._io import SyncSet
from pyworkflow.storage._file._view import FLUSH_BYTES

from .helpers import History, full_history, new_hook_id, new_run_id, raw, started

SEED_FOLDERS = {"runs", "events", "steps", "hooks", ".locks"}


async def append_all(backend: FileStorageBackend, events: list[Event]) -> None:
    for event in events:
        await backend.append(event.run_id, [event], expected_sequence=event.sequence - 1)


def files_under(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def log_path(base: Path, run_id: str) -> Path:
    return base / "events" / f"{run_id}.jsonl"


def run_file(base: Path, run_id: str) -> WorkflowRun:
    """The run record stored in ``runs/{run_id}.json`` (whatever it is behind or not)."""
    return msgspec.json.decode((base / "runs" / f"{run_id}.json").read_bytes(), type=WorkflowRun)


async def two_steps(backend: FileStorageBackend) -> History:
    """A run with two completed steps (5 events)."""
    h = History()
    started(h)
    for checkpoint in (1, 2):
        h.step(StepStarted, checkpoint, f"step{checkpoint}")
        h.step(StepCompleted, checkpoint, f"step{checkpoint}", result=raw(checkpoint))
    await append_all(backend, h.events)
    return h


def next_step(h: History) -> Event:
    checkpoint = len(h.events) // 2 + 1
    return h.step(StepStarted, checkpoint, f"step{checkpoint}")  # type: ignore[no-any-return]


# -- construction ---------------------------------------------------------------------------
async def test_base_path_positional_keyword_or_pathlike(tmp_path: Path) -> None:
    for backend in (
        FileStorageBackend(str(tmp_path / "a")),
        FileStorageBackend(base_path=tmp_path / "b"),
    ):
        assert not backend.base_path.exists()  # nothing until first use
        h = History()
        await backend.append(h.run_id, [started(h)], expected_sequence=0)
        assert (backend.base_path / "events" / f"{h.run_id}.jsonl").is_file()
    assert repr(FileStorageBackend(tmp_path / "c")).startswith("FileStorageBackend(")


@pytest.mark.parametrize("durability", ["always", "batch", "none"])
def test_durability_settings_are_accepted(tmp_path: Path, durability: Any) -> None:
    assert FileStorageBackend(tmp_path, durability=durability).durability == durability


@pytest.mark.parametrize("durability", ["sometimes", "ALWAYS", None, True, 1])
def test_unknown_durability_is_rejected_by_name(tmp_path: Path, durability: Any) -> None:
    with pytest.raises(ConfigurationError, match="durability") as info:
        FileStorageBackend(tmp_path, durability=durability)
    assert repr(durability) in str(info.value)


@pytest.mark.parametrize("base", ["", 42, None])
def test_a_bad_base_path_is_rejected(base: Any) -> None:
    with pytest.raises(ConfigurationError, match="base_path"):
        FileStorageBackend(base)


def test_a_base_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not a folder"):
        FileStorageBackend(tmp_path / "file")


# -- layout ---------------------------------------------------------------------------------
async def test_layout_is_the_seeds(tmp_path: Path) -> None:
    base = tmp_path / "data"
    backend = FileStorageBackend(base)
    events, hook_id = full_history(History())
    run_id = events[0].run_id
    await append_all(backend, events)
    await backend.claim_idempotency_key("order-1", run_id)
    async with backend.lock_run(run_id):
        pass

    folders = {p.name for p in base.iterdir()}
    # .due: the due-runs index; .created: runs by start time, for list_runs
    assert folders == SEED_FOLDERS | {"idempotency", ".due", ".created"}
    files = set(files_under(base))
    digest = hashlib.sha256(b"order-1").hexdigest()
    minute = events[0].timestamp.astimezone(UTC).strftime("%Y%m%d/%H%M")
    assert files == {
        f"runs/{run_id}.json",
        f"events/{run_id}.jsonl",
        f"steps/{run_id}.1.json",
        f"steps/{run_id}.2.json",
        f"hooks/{hook_id}.json",
        f"idempotency/{digest}.json",
        f".locks/{run_id}.append.lock",
        f".locks/{run_id}.lock",
        ".due/.built",  # the run completed: its entries and their folders are gone
        ".created/.built",
        f".created/{minute}.jsonl",
    }


async def test_files_are_human_readable_json(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    events, hook_id = full_history(History())
    run_id = events[0].run_id
    await append_all(backend, events)

    lines = log_path(tmp_path, run_id).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(events) + 1
    decoded = [json.loads(line) for line in lines[:-1]]
    assert [d["type"] for d in decoded] == [e.type.value for e in events]
    assert [d["sequence"] for d in decoded] == list(range(1, len(events) + 1))

    text = (tmp_path / "runs" / f"{run_id}.json").read_text()
    assert text.startswith('{\n  "run_id": ') and text.endswith("}\n")
    assert json.loads(text)["status"] == "completed"
    assert json.loads((tmp_path / "hooks" / f"{hook_id}.json").read_text())["status"] == "received"
    step = json.loads((tmp_path / "steps" / f"{run_id}.2.json").read_text())
    assert (step["status"], step["attempt"], step["result"]) == ("completed", 2, {"charged": 99.5})
    claim = await backend.claim_idempotency_key("k", run_id)
    assert claim == run_id
    stored = json.loads(next((tmp_path / "idempotency").iterdir()).read_text())
    assert stored == {"key": "k", "run_id": run_id}


# -- unsafe ids -------------------------------------------------------------------------------
BAD_IDS = [
    *("../x", "a/b", "/abs", "a\x00b", "..", ".", ".hidden", "", "x" * 201, "a\\b", "é"),
    *("run\n", "C:\\x", "a..b", 42, None),
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_unsafe_run_ids_never_reach_a_path(tmp_path: Path, bad: Any) -> None:
    base = tmp_path / "data"
    backend = FileStorageBackend(base)
    h = History(run_id=bad)
    for call in (
        backend.read(bad),
        backend.get_run(bad),
        backend.append(bad, [started(h)], expected_sequence=0),
        backend.claim_idempotency_key("key", bad),
    ):
        with pytest.raises(ConfigurationError, match="invalid run id") as info:
            await call
        assert repr(bad)[:40].strip("'\"") in str(info.value)
    with pytest.raises(ConfigurationError, match="invalid run id"):
        async with backend.lock_run(bad):
            pass
    with pytest.raises(ConfigurationError, match="invalid step id"):
        await backend.get_step(bad)
    with pytest.raises(InvalidTokenError, match="invalid hook id"):
        await backend.get_hook(bad)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("bad", ["../../escape", "a/b", "..", "x\x00"])
async def test_unsafe_ids_inside_events_are_rejected_before_writing(
    tmp_path: Path, bad: str
) -> None:
    from pyworkflow._core._events import HookCreated

    backend = FileStorageBackend(tmp_path / "data")
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    bad_step = h.make(StepStarted, step_id=bad, step_name="s", checkpoint=1, attempt=1)
    bad_hook = h.make(HookCreated, hook_id=bad, hook_name="x", checkpoint=1, token="t")

    with pytest.raises(ConfigurationError, match="invalid step id"):
        await backend.append(h.run_id, [bad_step], expected_sequence=1)
    with pytest.raises(InvalidTokenError, match="invalid hook id"):
        await backend.append(h.run_id, [bad_hook], expected_sequence=1)

    assert len(await backend.read(h.run_id)) == 1
    assert not any("escape" in name for name in files_under(tmp_path))


# -- torn and garbage lines ---------------------------------------------------------------------
@pytest.mark.parametrize("same_instance", [True, False], ids=["warm-cache", "new-process"])
async def test_a_torn_last_line_is_skipped_and_cut_by_the_next_append(
    tmp_path: Path, same_instance: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FileStorageBackend(tmp_path)
    h = await two_steps(backend)
    path = log_path(tmp_path, h.run_id)
    clean = path.read_bytes()
    # A writer died mid-write: half an event, no newline.
    torn_line = encode_event(
        h.make(StepStarted, step_id="x", step_name="y", checkpoint=3, attempt=1)
    )
    with path.open("ab") as f:
        f.write(torn_line[: len(torn_line) // 2])

    reader = backend if same_instance else FileStorageBackend(tmp_path)
    assert await reader.read(h.run_id) == h.events
    run = await reader.get_run(h.run_id)
    assert run is not None and run.last_sequence == 5

    event = next_step(h)
    await reader.append(h.run_id, [event], expected_sequence=5)

    data = path.read_bytes()
    assert data == clean + encode_event(event) + b"\n"
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    assert "event_log_torn_tail_cut" in capsys.readouterr().err
    kept = tmp_path / "events" / f".{h.run_id}.jsonl.torn"
    assert kept.read_bytes() == torn_line[: len(torn_line) // 2] + b"\n"


@pytest.mark.parametrize(
    "garbage", [b"not json at all", b"\x00" * 300, b'{"type":"no_such_event"}', b"{}"]
)
async def test_a_garbage_line_is_skipped_and_appends_go_on(
    tmp_path: Path, garbage: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FileStorageBackend(tmp_path)
    h = await two_steps(backend)
    with log_path(tmp_path, h.run_id).open("ab") as f:
        f.write(garbage + b"\n")

    fresh = FileStorageBackend(tmp_path)
    assert await fresh.read(h.run_id) == h.events
    event = next_step(h)
    await fresh.append(h.run_id, [event], expected_sequence=5)
    with pytest.raises(ConflictError):
        await backend.append(h.run_id, [event], expected_sequence=5)

    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    assert await backend.read(h.run_id, after=5) == [event]
    assert "event_log_garbage_skipped" in capsys.readouterr().err


async def test_a_log_holding_only_a_torn_line_is_an_empty_run(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    run_id = new_run_id()
    (tmp_path / "events").mkdir()
    log_path(tmp_path, run_id).write_bytes(b'{"type":"workflow_sta')
    assert await backend.read(run_id) == []
    assert await backend.get_run(run_id) is None
    h = History(run_id)
    await backend.append(run_id, [started(h)], expected_sequence=0)
    assert await FileStorageBackend(tmp_path).read(run_id) == h.events


async def test_a_failed_write_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await two_steps(backend)
    path = log_path(tmp_path, h.run_id)
    before = path.read_bytes()

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[:7])  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_file_append, "write_all", disk_full)
    event = next_step(h)
    with pytest.raises(StorageError, match="No space left") as info:
        await backend.append(h.run_id, [event], expected_sequence=5)
    assert "could not append" in str(info.value)
    assert path.read_bytes() == before
    monkeypatch.undo()

    await backend.append(h.run_id, [event], expected_sequence=5)
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events


# -- records: corrupt, missing, behind ------------------------------------------------------------
@pytest.mark.parametrize("content", [b"{not json", b"", b'{"run_id": 5}'])
async def test_a_corrupt_run_record_is_a_clear_error_for_that_run_only(
    tmp_path: Path, content: bytes
) -> None:
    backend = FileStorageBackend(tmp_path)
    good, bad = await two_steps(backend), await two_steps(backend)
    record = tmp_path / "runs" / f"{bad.run_id}.json"
    record.write_bytes(content)

    fresh = FileStorageBackend(tmp_path)
    with pytest.raises(CorruptRecordError) as info:
        await fresh.get_run(bad.run_id)
    assert str(record) in str(info.value) and "delete" in str(info.value)
    assert (await fresh.get_run(good.run_id)) is not None
    assert [r.run_id for r in await fresh.list_runs()] == [good.run_id]

    record.unlink()  # what the message says to do
    rebuilt = await fresh.get_run(bad.run_id)
    assert rebuilt == project(None, bad.events).run
    assert not record.exists()  # a running run's file comes at its next flush point
    assert {r.run_id for r in await fresh.list_runs()} == {good.run_id, bad.run_id}


async def test_an_append_repairs_a_corrupt_run_record(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    h = await two_steps(backend)
    (tmp_path / "runs" / f"{h.run_id}.json").write_bytes(b"\x00\x00")

    fresh = FileStorageBackend(tmp_path)
    event = next_step(h)
    await fresh.append(h.run_id, [event], expected_sequence=5)

    assert await fresh.get_run(h.run_id) == project(None, h.events).run
    assert await FileStorageBackend(tmp_path).get_run(h.run_id) == project(None, h.events).run


async def test_a_failed_record_write_keeps_the_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await two_steps(backend)
    real = _file_append.write_temp

    def fail_runs(path: str, data: bytes, *, sync: bool) -> str:
        if Path(path).parent.name == "runs":
            raise OSError(errno.EIO, "I/O error", path)
        return real(path, data, sync=sync)

    monkeypatch.setattr(_file_append, "write_temp", fail_runs)
    suspended = h.add(WorkflowSuspended, reason="sleep")  # a flush point
    await backend.append(h.run_id, [suspended], expected_sequence=5)  # committed: no error
    assert not (tmp_path / "runs" / f"{h.run_id}.json").exists()  # the first flush failed
    monkeypatch.undo()

    assert await backend.read(h.run_id) == h.events
    run = await backend.get_run(h.run_id)
    assert run == project(None, h.events).run and run.status is RunStatus.SUSPENDED
    assert run_file(tmp_path, h.run_id) == run  # the read retried the flush


async def test_a_corrupt_step_or_hook_record_is_reported(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    events, hook_id = full_history(History())
    run_id = events[0].run_id
    await append_all(backend, events)
    (tmp_path / "steps" / f"{run_id}.1.json").write_text("[")
    (tmp_path / "hooks" / f"{hook_id}.json").write_text("")

    with pytest.raises(CorruptRecordError, match=r"step record .*\.1\.json is corrupt"):
        await backend.get_step(f"{run_id}.1")
    with pytest.raises(CorruptRecordError, match=r"hook record .* is corrupt .*empty"):
        await backend.get_hook(hook_id)
    assert await backend.list_hooks() == []  # skipped, not fatal
    assert [h.hook_id for h in await backend.list_hooks(run_id)] == [hook_id]


# -- caches: O(1) appends ----------------------------------------------------------------------
class ReadCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        real = os.pread

        def pread(fd: int, n: int, offset: int) -> bytes:
            data = real(fd, n, offset)
            self.bytes += len(data)
            return data

        monkeypatch.setattr(os, "pread", pread)


async def big_run(backend: FileStorageBackend, n: int) -> History:
    h = History()
    started(h)
    while len(h.events) < n:
        checkpoint = len(h.events) // 2 + 1
        h.step(StepStarted, checkpoint, "s")
        h.step(StepCompleted, checkpoint, "s", result=raw({"i": checkpoint, "pad": "x" * 100}))
    for i in range(0, len(h.events), 1000):
        await backend.append(h.run_id, h.events[i : i + 1000], expected_sequence=i)
    return h


async def test_appends_do_not_reread_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await big_run(backend, 10_001)
    size = log_path(tmp_path, h.run_id).stat().st_size
    assert size > 1_000_000
    counter = ReadCounter(monkeypatch)

    for _ in range(100):
        event = next_step(h)
        await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)
        assert await backend.read(h.run_id, after=event.sequence) == []
    assert counter.bytes == 0

    # Another process appends: only its new line is read, not the log.
    other = FileStorageBackend(tmp_path, durability="none")
    event = next_step(h)
    await other.append(h.run_id, [event], expected_sequence=event.sequence - 1)
    counter.bytes = 0
    event = next_step(h)
    await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)
    assert 0 < counter.bytes < 1000

    # A process that never saw the log reads its end to learn the last sequence (at most
    # 64 KiB), and the lines after the run file's log_end (at most FLUSH_BYTES past it).
    counter.bytes = 0
    run = await FileStorageBackend(tmp_path).get_run(h.run_id)
    assert run == project(None, h.events).run
    assert counter.bytes <= 64 * 1024 + FLUSH_BYTES

    counter.bytes = 0
    assert await backend.read(h.run_id) == h.events  # a full read: one pass over the file
    assert counter.bytes == log_path(tmp_path, h.run_id).stat().st_size


async def test_two_instances_on_one_folder_see_each_other(tmp_path: Path) -> None:
    one, two = FileStorageBackend(tmp_path), FileStorageBackend(tmp_path)
    h = await two_steps(one)
    assert await two.get_run(h.run_id) == project(None, h.events).run

    event = next_step(h)
    await two.append(h.run_id, [event], expected_sequence=5)
    stale = h.make(StepCompleted, step_id=event.step_id, step_name="x", checkpoint=3, attempt=1)  # type: ignore[attr-defined]
    with pytest.raises(ConflictError):
        await one.append(h.run_id, [stale], expected_sequence=5)
    assert await one.get_run(h.run_id) == project(None, h.events).run
    assert await one.read(h.run_id, after=5) == [event]

    async with one.lock_run(h.run_id):
        with pytest.raises(RunLockedError, match="another task of this process") as info:
            async with two.lock_run(h.run_id):
                pass
        assert ".locks" in str(info.value)


# -- durability -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("durability", "syncs"),
    [("always", [1, 2, 3, 4, 5, 6]), ("batch", [4, 6]), ("none", [])],
)
async def test_durability_decides_which_appends_fsync_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: Any, syncs: list[int]
) -> None:
    synced: list[int] = []
    backend = FileStorageBackend(tmp_path, durability=durability)
    h = History()
    current: list[int] = [0]
    real = GroupCommit.barrier

    def barrier(self: GroupCommit, paths: SyncSet) -> None:
        if log_path(tmp_path, h.run_id).as_posix() in paths.files:
            synced.append(current[0])
        real(self, paths)

    monkeypatch.setattr(GroupCommit, "barrier", barrier)
    started(h)
    h.step(StepStarted, 1, "a")
    h.step(StepCompleted, 1, "a", result=raw(1))
    h.add(WorkflowSuspended, reason="sleep")  # a boundary
    h.add(WorkflowResumed, reason="resume")
    h.add(WorkflowCompleted, result=raw(1))  # a boundary
    for event in h.events:
        current[0] = event.sequence
        await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)

    assert synced == syncs
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    run = await backend.get_run(h.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


# -- blocking: a contended lock is waited for in a thread ------------------------------------------
async def test_an_append_waits_for_a_held_append_lock(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = await two_steps(backend)
    event = next_step(h)
    fd = os.open(tmp_path / ".locks" / f"{h.run_id}.append.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process in the middle of an append
    done = anyio.Event()

    async def append() -> None:
        await backend.append(h.run_id, [event], expected_sequence=5)
        done.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(append)
            await anyio.sleep(0.05)
            assert not done.is_set()
            assert (
                await anyio.to_thread.run_sync(lambda: log_path(tmp_path, h.run_id).stat().st_size)
                > 0
            )
            fcntl.flock(fd, fcntl.LOCK_UN)
            with anyio.fail_after(10):
                await done.wait()
    finally:
        os.close(fd)
    assert await backend.read(h.run_id, after=5) == [event]


# -- odds and ends ---------------------------------------------------------------------------
async def test_list_runs_sees_changes_made_by_another_instance(tmp_path: Path) -> None:
    one, two = FileStorageBackend(tmp_path), FileStorageBackend(tmp_path)
    h = await two_steps(one)
    assert [r.status for r in await one.list_runs()] == [RunStatus.RUNNING]

    done = h.add(WorkflowCompleted, result=raw("ok"))
    await two.append(h.run_id, [done], expected_sequence=5)
    other = await two_steps(two)

    page = await one.list_runs()
    assert {r.run_id: r.status for r in page} == {
        h.run_id: RunStatus.COMPLETED,
        other.run_id: RunStatus.RUNNING,
    }
    # Runs are found by their logs: a running run has no run file before its first flush
    # point, and a missing one only means it is rebuilt.
    assert not (tmp_path / "runs" / f"{other.run_id}.json").exists()
    (tmp_path / "runs" / f"{h.run_id}.json").unlink()
    assert {r.run_id for r in await FileStorageBackend(tmp_path).list_runs()} == {
        h.run_id,
        other.run_id,
    }
    assert [r.run_id for r in await one.list_runs(status=RunStatus.COMPLETED)] == [h.run_id]


@pytest.mark.parametrize(
    ("durability", "synced"), [("always", True), ("batch", True), ("none", False)]
)
async def test_record_files_are_fsynced_unless_durability_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: Any, synced: bool
) -> None:
    """Record files are written at flush points only, and made durable whenever written
    (but with "none"): their contents by a barrier before their names, the step and hook
    files' names by a barrier before the run file's: after a power loss, a file on disk is
    whole and none is missing that the run file counts on."""
    seen: list[str] = []
    real_barrier, real_replace = GroupCommit.barrier, os.replace

    def barrier(self: GroupCommit, paths: SyncSet) -> None:
        names = sorted(Path(p).name for p in paths.files)
        folders = sorted(Path(p).name for p in paths.folders)
        seen.append(f"barrier {names} {folders}")
        real_barrier(self, paths)

    def replace(src: str, dst: str) -> None:
        if str(tmp_path) in str(dst):
            seen.append(f"rename {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(GroupCommit, "barrier", barrier)
    monkeypatch.setattr(os, "replace", replace)
    backend = FileStorageBackend(tmp_path, durability=durability)
    h = await two_steps(backend)
    hook_id = new_hook_id()
    created = h.add(HookCreated, hook_id=hook_id, hook_name="x", checkpoint=3, token="t")
    seen.clear()
    await backend.append(h.run_id, [created], expected_sequence=5)
    renames = [s for s in seen if s.startswith("rename")]
    assert renames == [f"rename {hook_id}.json"]  # no run file before the first flush point
    assert (seen.index(renames[0]) > 0) is synced  # its content was made durable first

    seen.clear()
    suspended = h.add(WorkflowSuspended, reason="hook")
    await backend.append(h.run_id, [suspended], expected_sequence=6)

    steps = [f"rename {h.run_id}.1.json", f"rename {h.run_id}.2.json"]
    run = f"rename {h.run_id}.json"
    renames = [s for s in seen if s.startswith("rename")]
    assert sorted(renames[:2]) == steps and renames[2:] == [run]  # last: it vouches for them
    barriers = [i for i, s in enumerate(seen) if s.startswith("barrier")]
    if not synced:
        assert barriers == []
        return
    # contents (with the log) before any name; the step files' names before the run file's
    first = seen[barriers[0]]
    assert f"{h.run_id}.jsonl" in first and first.count(".tmp") == 3
    assert barriers[0] < seen.index(steps[0]) and barriers[0] < seen.index(steps[1])
    assert max(seen.index(steps[0]), seen.index(steps[1])) < barriers[1] < seen.index(run)
    assert "'steps'" in seen[barriers[1]]


async def test_a_relative_base_path_is_fixed_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = FileStorageBackend("./workflow_data")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    h = await two_steps(backend)
    assert (tmp_path / "workflow_data" / "events" / f"{h.run_id}.jsonl").is_file()
    assert not (tmp_path / "elsewhere" / "workflow_data").exists()


async def test_a_negative_after_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="after"):
        await FileStorageBackend(tmp_path).read(new_run_id(), after=-1)


async def test_a_closed_backend_forgets_its_caches_but_still_works(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    h = await two_steps(backend)
    await backend.aclose()
    event = next_step(h)
    await backend.append(h.run_id, [event], expected_sequence=5)
    assert await backend.read(h.run_id) == h.events


@pytest.mark.parametrize("key", ["", "\ud800", 7, None])
async def test_unusable_idempotency_keys_are_rejected(tmp_path: Path, key: Any) -> None:
    with pytest.raises(ConfigurationError, match="idempotency key"):
        await FileStorageBackend(tmp_path).claim_idempotency_key(key, new_run_id())
