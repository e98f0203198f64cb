"""FileStorageBackend's creation index (``.created/``): list_runs pages from it, newest first,
without projecting every run; a folder without it is indexed once; crashes leave a superset."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import anyio

from pyworkflow import RunStatus
from pyworkflow._core._events import WorkflowCompleted
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._file._created import CreatedIndex

from .helpers import T0, History, raw, started


async def _runs(backend: FileStorageBackend, count: int, *, step: float = 7.0) -> list[str]:
    """``count`` runs started ``step`` seconds apart (so across several minute files);
    every third one completed."""
    ids = []
    for i in range(count):
        h = History(start=T0 + timedelta(seconds=step * i))
        events = [started(h, name=f"wf{i % 2}")]
        if i % 3 == 0:
            events.append(h.add(WorkflowCompleted, result=raw(i)))
        await backend.append(h.run_id, events, expected_sequence=0)
        ids.append(h.run_id)
    return ids


async def _all_pages(backend: FileStorageBackend, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await backend.list_runs(limit=4, cursor=cursor, **filters)  # type: ignore[arg-type]
        seen += [r.run_id for r in page]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_pages_come_from_the_index_newest_first(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    ids = await _runs(backend, 30)
    assert await _all_pages(backend) == ids[::-1]
    done = [run_id for i, run_id in enumerate(ids) if i % 3 == 0]
    assert await _all_pages(backend, status=RunStatus.COMPLETED) == done[::-1]
    assert await _all_pages(backend, workflow_name="wf1") == ids[1::2][::-1]
    minutes = sorted(p.name for p in (tmp_path / ".created").glob("*/*.jsonl"))
    assert len(minutes) == 4  # 30 runs 7 s apart span four minutes


async def test_a_folder_without_the_index_is_indexed_once(tmp_path: Path) -> None:
    ids = await _runs(FileStorageBackend(tmp_path, durability="none"), 9)
    shutil.rmtree(tmp_path / ".created")  # as a folder made by an older version
    backend = FileStorageBackend(tmp_path, durability="none")
    assert await _all_pages(backend) == ids[::-1]
    assert (tmp_path / ".created" / ".built").exists()
    h = History(start=T0 + timedelta(hours=1))
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    assert await _all_pages(FileStorageBackend(tmp_path)) == [h.run_id, *ids[::-1]]


async def test_a_torn_line_or_a_start_never_written_hides_no_run(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    first = await _runs(backend, 1)
    index = CreatedIndex(str(tmp_path / ".created"))
    _, minute = index.path(T0)
    async with await anyio.open_file(minute, "ab") as f:  # killed mid-line, before its log
        await f.write(b'{"at":"2026-01-01T00:00:00.5+00:00","run_id":"run_00')
    ghost = History(start=T0 + timedelta(seconds=1))
    index.add(ghost.now, ghost.run_id, "wf0", sync=False)  # killed after its line: no log
    later = History(start=T0 + timedelta(seconds=2))
    await backend.append(later.run_id, [started(later)], expected_sequence=0)
    assert await _all_pages(FileStorageBackend(tmp_path)) == [later.run_id, *first]
