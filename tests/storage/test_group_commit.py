"""Group commit of durable appends (``_file._commit``, ``_file._append``).

The rules under test: an append with ``durability="always"`` returns only after a barrier
that *began after its write* ended well and covered its log; appends ready at the same
moment share barriers; a failed barrier fails (and undoes) every append it covered. The
barrier is replaced by a recorder that takes a few milliseconds in its thread (a real one
is too fast here to overlap reliably); the last tests use real barriers, and
``test_group_commit_crash.py`` kills a real process in the middle of batches.
"""

from __future__ import annotations

import errno
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyworkflow import StorageError
from pyworkflow._core._events import StepCompleted, StepStarted
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._file import _commit
from pyworkflow.storage._file._append import AppendTx
from pyworkflow.storage._file._commit import GroupCommit
from pyworkflow.storage._file._io import SyncSet

from .helpers import History, raw, started

_clock = itertools.count()
_mutex = threading.Lock()


def tick() -> int:
    with _mutex:
        return next(_clock)


class Barriers:
    """Stands in for ``GroupCommit.barrier``: records (began, ended, files); may fail."""

    def __init__(self, *, fail: set[int] | None = None) -> None:
        self.done: list[tuple[int, int, frozenset[str]]] = []
        self.fail = fail or set()
        self.calls = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def barrier(commit: GroupCommit, paths: SyncSet) -> None:
            self(commit, paths)

        monkeypatch.setattr(GroupCommit, "barrier", barrier)

    def __call__(self, commit: GroupCommit, paths: SyncSet) -> None:
        began = tick()
        self.calls += 1
        number = self.calls
        time.sleep(0.004)
        if number in self.fail:
            raise OSError(errno.EIO, "Input/output error")
        self.done.append((began, tick(), frozenset(paths.files)))


async def test_every_waiter_is_covered_by_a_barrier_that_began_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    barriers = Barriers(fail={3})
    barriers.install(monkeypatch)
    commit = GroupCommit("/nowhere", use_syncfs=False)
    calls: list[tuple[str, int, int, bool]] = []

    async def waiter(n: int) -> None:
        await anyio.sleep(n * 0.001)  # staggered: some join while a barrier runs
        paths = SyncSet()
        paths.files.add(f"/f{n}")
        called = tick()
        try:
            await commit.sync(paths)
            ok = True
        except OSError:
            ok = False
        calls.append((f"/f{n}", called, tick(), ok))

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(waiter, n)

    assert len(calls) == 30
    assert 2 < barriers.calls < 30  # shared, yet more than one
    failed = [c for c in calls if not c[3]]
    assert failed  # the waiters of the failed barrier learnt it
    for path, called, returned, ok in calls:
        if ok:
            assert any(
                called < began and ended < returned and path in files
                for began, ended, files in barriers.done
            )


async def test_a_cancelled_waiter_still_learns_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait is shielded: the writes it covers are made, the caller must know."""
    barriers = Barriers()
    barriers.install(monkeypatch)
    commit = GroupCommit("/nowhere", use_syncfs=False)
    finished = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        await commit.sync(SyncSet())
        finished = True
    assert finished and barriers.calls == 1


def _history(n: int) -> History:
    h = History()
    started(h)
    h.step(StepStarted, 1, "a")
    return h


async def test_concurrent_appends_share_barriers_and_wait_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    barriers = Barriers()
    barriers.install(monkeypatch)
    written: dict[tuple[str, int], int] = {}
    real_write = AppendTx.write

    def write(self: AppendTx, *, inline: bool = True) -> None:
        real_write(self, inline=inline)
        written[self.run_id, self.events[-1].sequence] = tick()

    monkeypatch.setattr(AppendTx, "write", write)
    backend = FileStorageBackend(tmp_path, durability="always")
    acked: list[tuple[str, int, int]] = []

    async def run(n: int) -> None:
        h = _history(n)
        for event in h.events:
            await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)
            acked.append((h.run_id, event.sequence, tick()))
        done = h.step(StepCompleted, 1, "a", result=raw(n))
        await backend.append(h.run_id, [done], expected_sequence=2)
        acked.append((h.run_id, 3, tick()))

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(run, n)

    assert len(acked) == 60
    assert barriers.calls < 30  # 60 appends (and 20 index entries) shared them
    for run_id, seq, returned in acked:
        log = str(tmp_path / "events" / f"{run_id}.jsonl")
        wrote = written[run_id, seq]
        assert any(
            wrote < began and ended < returned and log in files
            for began, ended, files in barriers.done
        ), (run_id, seq)


@pytest.mark.parametrize("failing", [1, 2])  # the index entries' barrier, the log's
async def test_an_append_whose_barrier_failed_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    backend = FileStorageBackend(tmp_path, durability="always")
    h = History()
    first = started(h)
    barriers = Barriers(fail={failing})
    barriers.install(monkeypatch)
    with pytest.raises(StorageError, match="could not append"):
        await backend.append(h.run_id, [first], expected_sequence=0)
    log = tmp_path / "events" / f"{h.run_id}.jsonl"
    assert not log.exists() or log.read_bytes() == b""  # nothing of it is left
    assert list((tmp_path / ".due").rglob("*run_*")) == []  # nor its due entry
    assert await backend.read(h.run_id) == []
    assert await backend.get_run(h.run_id) is None

    await backend.append(h.run_id, [first], expected_sequence=0)  # retried: it goes through
    assert await FileStorageBackend(tmp_path).read(h.run_id) == [first]


@pytest.mark.parametrize("use_syncfs", [True, False])
async def test_real_barriers_keep_every_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_syncfs: bool
) -> None:
    if use_syncfs and not _commit.syncfs_available():
        pytest.skip("syncfs needs Linux 5.8+")
    real_init = GroupCommit.__init__

    def init(self: GroupCommit, base: str, **_: Any) -> None:
        real_init(self, base, use_syncfs=use_syncfs)

    monkeypatch.setattr(GroupCommit, "__init__", init)
    backend = FileStorageBackend(tmp_path, durability="always")
    histories = [_history(n) for n in range(10)]

    async def run(h: History) -> None:
        for event in h.events:
            await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)

    async with anyio.create_task_group() as tg:
        for h in histories:
            tg.start_soon(run, h)
    fresh = FileStorageBackend(tmp_path)
    for h in histories:
        assert await fresh.read(h.run_id) == h.events
