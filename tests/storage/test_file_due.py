"""FileStorageBackend's due-runs index (``.due/``): its files, restarts, crashes, old folders,
races between processes, and that listing due runs reads no run that isn't due.

The semantics of ``due_runs`` are in the contract suite (``test_contract.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyworkflow._core._events import (
    Event,
    HookCreated,
    SleepStarted,
    StepCompleted,
    StepRetrying,
    StepStarted,
    WorkflowCompleted,
    WorkflowResumed,
)
from pyworkflow.storage import FileStorageBackend

from .helpers import (
    T0,
    History,
    failed_history,
    new_hook_id,
    new_run_id,
    raw,
    started,
    suspended_on_sleep,
    waiting_on_hook,
)

ROOT = Path(__file__).resolve().parents[2]
FAR = T0 + timedelta(days=3650)
WAKE = T0 + timedelta(hours=1)  # as in _due_crash_child


async def append_all(backend: FileStorageBackend, events: list[Event]) -> None:
    for event in events:
        await backend.append(event.run_id, [event], expected_sequence=event.sequence - 1)


def due_files(base: Path) -> list[str]:
    """Everything under ``.due/``, folders included, relative to it."""
    return sorted(str(p.relative_to(base / ".due")) for p in (base / ".due").rglob("*"))


def entries(base: Path) -> list[str]:
    """The entries under ``.due/`` (no folders, no marker)."""
    return [p for p in due_files(base) if "_" in p]


def entry(due: datetime, run_id: str) -> str:
    stamp = due.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp[:8]}/{stamp[9:13]}/{stamp}_{run_id}"


class Spy:
    """Paths passed to the file system calls a backend makes to find things."""

    CALLS = ("open", "listdir", "scandir", "stat", "unlink", "mkdir", "rmdir", "replace")
    LISTINGS = ("listdir", "scandir")

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def paths(self, *calls: str) -> list[str]:
        return [path for call, path in self.calls if not calls or call in calls]

    def under(self, base: Path, folder: str, *calls: str) -> list[str]:
        """Paths in ``base/folder`` (the folder itself too, for listings)."""
        prefix = f"{base / folder}/"
        return [
            path
            for call, path in self.calls
            if (not calls or call in calls)
            and (path.startswith(prefix) or (path == prefix[:-1] and call in self.LISTINGS))
        ]


@contextmanager
def spying(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    spy = Spy()
    for name in Spy.CALLS:
        real: Callable[..., Any] = getattr(os, name)

        def spied(path: Any, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            spy.calls.append((_name, os.fsdecode(path) if not isinstance(path, int) else ""))
            return _real(path, *args, **kw)

        monkeypatch.setattr(os, name, spied)
    try:
        yield spy
    finally:
        monkeypatch.undo()


# -- the files ------------------------------------------------------------------------------
async def test_an_entry_per_due_run_named_by_due_time(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    h = History()
    wake = datetime.fromisoformat("2025-01-01T01:02:03.456789+00:00")
    await append_all(backend, suspended_on_sleep(h, wake))
    assert due_files(tmp_path) == [".built", "20250101", "20250101/0102", entry(wake, h.run_id)]
    assert entry(wake, h.run_id) == f"20250101/0102/20250101T010203.456789Z_{h.run_id}"
    assert (tmp_path / ".due" / entry(wake, h.run_id)).stat().st_size == 0

    resumed = h.add(WorkflowResumed, reason="resume")
    await backend.append(h.run_id, [resumed], expected_sequence=3)
    # the old entry's folders went with it: nothing but the run's current entry
    assert due_files(tmp_path) == [".built", "20250101", "20250101/0000",
                                   entry(resumed.timestamp, h.run_id)]  # fmt: skip

    done = h.add(WorkflowCompleted, result=raw(None))
    await backend.append(h.run_id, [done], expected_sequence=4)
    assert due_files(tmp_path) == [".built"]


async def test_steps_and_timers_touch_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = History()
    await append_all(backend, [started(h)])
    hook_id = new_hook_id()
    hot = [
        h.step(StepStarted, 1, "charge"),
        h.step(StepCompleted, 1, "charge", result=raw(1)),
        h.step(StepRetrying, 2, "ship", resume_at=WAKE, delay=5.0),
        h.add(SleepStarted, checkpoint=3, duration=60.0, resume_at=WAKE),
        h.add(HookCreated, hook_id=hook_id, hook_name="go", checkpoint=4, token=f"x:{hook_id}"),
    ]
    with spying(monkeypatch) as spy:
        await append_all(backend, hot)
        assert spy.under(tmp_path, ".due") == []
        finish = h.add(WorkflowCompleted, result=raw(None))
        await backend.append(h.run_id, [finish], expected_sequence=finish.sequence - 1)
        assert spy.under(tmp_path, ".due", "unlink") == [
            str(tmp_path / ".due" / entry(h.events[0].timestamp, h.run_id))
        ]


# -- restarts and scale -----------------------------------------------------------------------
async def test_a_restarted_backend_finds_the_due_runs_without_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = FileStorageBackend(tmp_path)
    sleeping = suspended_on_sleep(History(), WAKE)
    running = [started(History())]
    await append_all(first, sleeping)
    await append_all(first, running)
    await append_all(first, waiting_on_hook(History()))
    await append_all(first, failed_history(History()))
    due = [(running[0].timestamp, running[0].run_id), (WAKE, sleeping[0].run_id)]
    assert await first.due_runs(FAR) == due
    await first.aclose()

    restarted = FileStorageBackend(tmp_path)
    with spying(monkeypatch) as spy:
        assert await restarted.due_runs(FAR) == due
    assert spy.under(tmp_path, "events", "listdir", "scandir") == []  # no rebuild
    assert spy.under(tmp_path, "runs", "listdir", "scandir") == []


async def test_ten_thousand_future_timers_cost_nothing_to_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = FileStorageBackend(tmp_path, durability="none")
    first_wake = T0 + timedelta(days=1)
    ids = []
    for i in range(10_000):
        events = suspended_on_sleep(History(), first_wake + timedelta(seconds=i))
        await writer.append(events[0].run_id, events, expected_sequence=0)
        ids.append(events[0].run_id)
    reader = FileStorageBackend(tmp_path)  # a fresh process: nothing cached

    with spying(monkeypatch) as spy:
        assert await reader.due_runs(first_wake - timedelta(microseconds=1)) == []
    for folder in ("runs", "events", "steps", "hooks"):
        assert spy.under(tmp_path, folder) == [], folder
    assert spy.paths("listdir", "scandir") == [str(tmp_path / ".due")]  # not even a bucket

    with spying(monkeypatch) as spy:
        due = await reader.due_runs(first_wake + timedelta(seconds=9))
    assert due == [(first_wake + timedelta(seconds=i), ids[i]) for i in range(10)]
    logs = {p for p in spy.under(tmp_path, "events", "open")}
    assert logs == {str(tmp_path / "events" / f"{run_id}.jsonl") for run_id in ids[:10]}
    assert len(spy.paths("listdir", "scandir")) == 3  # .due/, its day, the minute

    assert len(await reader.due_runs(FAR, limit=10_000)) == 10_000


# -- crashes ----------------------------------------------------------------------------------
def crash_child(base: Path, run_id: str, point: str) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.storage._due_crash_child", str(base), run_id, point],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr  # SIGKILL


@pytest.mark.parametrize("point", ["before-write", "after-write"])
async def test_a_crash_around_the_log_write_loses_no_due_run(tmp_path: Path, point: str) -> None:
    h = History()
    events = suspended_on_sleep(h, WAKE)
    await append_all(FileStorageBackend(tmp_path), events)
    resumed = h.add(WorkflowResumed, reason="resume")  # what the child appends

    await anyio.to_thread.run_sync(crash_child, tmp_path, h.run_id, point)

    # both entries are on disk: the run's current one and a stale one
    assert entries(tmp_path) == sorted([entry(resumed.timestamp, h.run_id), entry(WAKE, h.run_id)])
    backend = FileStorageBackend(tmp_path)
    written = len(await backend.read(h.run_id)) == 4
    assert written == (point == "after-write")
    current = resumed.timestamp if written else WAKE
    assert await backend.due_runs(FAR) == [(current, h.run_id)]
    assert entries(tmp_path) == [entry(current, h.run_id)]


async def test_stale_and_missing_entries_are_repaired_when_met(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    sleeping = suspended_on_sleep(History(), WAKE)
    finished = failed_history(History())
    await append_all(backend, sleeping)
    await append_all(backend, finished)
    due = tmp_path / ".due"
    stale = [
        entry(T0, new_run_id()),  # a new run killed before its first log write
        entry(T0, finished[0].run_id),  # killed before removing a finished run's entry
        entry(T0 + timedelta(minutes=5), sleeping[0].run_id),  # and an old one of a due run
    ]
    for name in stale:
        (due / name).parent.mkdir(parents=True, exist_ok=True)
        (due / name).touch()
    (due / entry(WAKE, sleeping[0].run_id)).unlink()  # lost: a power loss, durability "none"

    assert await backend.due_runs(FAR) == [(WAKE, sleeping[0].run_id)]
    assert entries(tmp_path) == [entry(WAKE, sleeping[0].run_id)]
    assert await FileStorageBackend(tmp_path).due_runs(FAR) == [(WAKE, sleeping[0].run_id)]


# -- folders made before the index ------------------------------------------------------------
async def test_a_folder_without_the_index_is_indexed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = FileStorageBackend(tmp_path)
    sleeping = suspended_on_sleep(History(), WAKE)
    running = [started(History())]
    await append_all(old, sleeping)
    await append_all(old, running)
    await append_all(old, failed_history(History()))
    shutil.rmtree(tmp_path / ".due")  # as an older version left it
    due = [(running[0].timestamp, running[0].run_id), (WAKE, sleeping[0].run_id)]

    assert await FileStorageBackend(tmp_path).due_runs(FAR) == due
    assert (tmp_path / ".due" / ".built").exists()
    with spying(monkeypatch) as spy:
        assert await FileStorageBackend(tmp_path).due_runs(FAR) == due
    assert spy.under(tmp_path, "events", "listdir", "scandir") == []


# -- several processes --------------------------------------------------------------------------
async def test_two_instances_moving_runs_through_one_minute(tmp_path: Path) -> None:
    """Entries made and removed in one minute folder by two instances at once (in worker
    threads): folders emptied and removed while the other makes an entry in them."""
    left, right = FileStorageBackend(tmp_path), FileStorageBackend(tmp_path)
    keep: list[tuple[datetime, str]] = []

    async def one_run(backend: FileStorageBackend, i: int) -> None:
        h = History()
        first = started(h)
        await backend.append(h.run_id, [first], expected_sequence=0)
        if i % 3:
            done = h.add(WorkflowCompleted, result=raw(i))
            await backend.append(h.run_id, [done], expected_sequence=1)
        else:
            keep.append((first.timestamp, h.run_id))

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(one_run, left if i % 2 else right, i)

    assert await FileStorageBackend(tmp_path).due_runs(FAR) == sorted(keep)
    assert len(keep) == 20


async def test_the_folder_of_the_minute_under_way_stays_for_the_next_runs(tmp_path: Path) -> None:
    """Short runs, each due at its start while it runs, don't remove and make their minute
    folder again run after run; a folder of a past minute goes with its last entry, and a
    reader removes the empty folder of the minute under way."""
    from datetime import UTC

    backend = FileStorageBackend(tmp_path, durability="none")
    # Stamps of a minute to come stand for the minute under way (a real one may end
    # between two lines of this test).
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=10)
    past = now - timedelta(minutes=20)
    for start in (now, past):
        h = History(start=start)
        await append_all(backend, [started(h), h.add(WorkflowCompleted, result=raw(1))])
    stamp = now.strftime("%Y%m%d/%H%M")
    assert due_files(tmp_path) == [".built", stamp[:8], stamp]  # past minute's folder gone
    with spying(pytest.MonkeyPatch()) as spy:
        h = History(start=now)
        await append_all(backend, [started(h), h.add(WorkflowCompleted, result=raw(2))])
    assert spy.paths("mkdir", "rmdir") == []  # the folder was there, and it stays
    assert await backend.due_runs(now + timedelta(minutes=2)) == []
    assert due_files(tmp_path) == [".built", stamp[:8]]  # the reader removed the minute's
    assert await backend.due_runs(now + timedelta(minutes=2)) == []
    assert due_files(tmp_path) == [".built"]  # and, at its next look, the day's
