"""FileStorageBackend reads: what a fresh instance (another process) reads of a log.

A read from the top takes the run file's ``log_end``/``last_sequence`` as a hint of how many
lines the log holds (``_file_log``); these tests pin that a hint that does not fit never
changes what is read, and that a read sets up no folders and writes nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pyworkflow._core._events import (
    HookReceived,
    StepCompleted,
    StepStarted,
    WorkflowResumed,
    WorkflowSuspended,
    encode_event,
)
from pyworkflow._core._projection import project
from pyworkflow.storage import FileStorageBackend

from .helpers import History, append_all, log_path, raw, started, waiting_on_hook


async def suspended_run(base: Path, steps: int = 3) -> History:
    """A run of ``steps`` steps, suspended: its run file vouches for its whole log."""
    h = History()
    events = [started(h)]
    for checkpoint in range(1, steps + 1):
        events.append(h.step(StepStarted, checkpoint, "a"))
        events.append(h.step(StepCompleted, checkpoint, "a", result=raw(checkpoint)))
    events.append(h.add(WorkflowSuspended, reason="sleep"))
    await append_all(FileStorageBackend(base, durability="none"), events)
    return h


def edit_run_file(base: Path, run: str, **fields: Any) -> None:
    path = base / "runs" / f"{run}.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **fields}))


async def test_a_suspended_run_reads_whole_from_a_fresh_instance(tmp_path: Path) -> None:
    h = await suspended_run(tmp_path)
    log_end = json.loads((tmp_path / "runs" / f"{h.run_id}.json").read_text())["log_end"]
    assert log_end == log_path(tmp_path, h.run_id).stat().st_size  # the hint covers it all
    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    assert await FileStorageBackend(tmp_path).read(h.run_id, after=5) == h.events[5:]


@pytest.mark.parametrize(
    "edit",
    [
        {"last_sequence": 7},
        {"last_sequence": 9},
        {"log_end": 10},
        {"log_end": 10**9},
        {"log_end": -1},
        {"run_id": "run_someone_else"},
    ],
    ids=["fewer", "more", "mid-line", "past-the-end", "older-version", "another-run"],
)
async def test_a_run_file_that_does_not_fit_its_log_never_changes_what_is_read(
    tmp_path: Path, edit: dict[str, Any]
) -> None:
    h = await suspended_run(tmp_path)
    grown = h.step(StepStarted, 4, "a")  # a tail after the run file's log_end
    await FileStorageBackend(tmp_path).append(h.run_id, [grown], expected_sequence=8)
    edit_run_file(tmp_path, h.run_id, **edit)

    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events


async def test_a_split_last_line_under_the_run_file_is_skipped_as_the_marks_skip_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run file vouches for the log up to its end, whose last line was split in two
    (a newline after a comma: JSON, one event across two lines). Read alone, neither half
    is an event: the read does not take the two halves as one event, so it agrees with
    the log's sequence that an append checks."""
    h = await suspended_run(tmp_path)
    path = log_path(tmp_path, h.run_id)
    data = path.read_bytes()
    last = data.rindex(b"\n", 0, len(data) - 1) + 1
    comma = data.index(b',"reason"', last) + 1
    path.write_bytes(data[:comma] + b"\n" + data[comma:])
    edit_run_file(tmp_path, h.run_id, log_end=len(data) + 1)  # it vouches for both halves

    fresh = FileStorageBackend(tmp_path, durability="none")
    assert await fresh.read(h.run_id) == h.events[:-1]
    assert "event_log_garbage_skipped" in capsys.readouterr().err
    again = History(h.run_id)
    again.sequence, again.now = 7, h.now
    resumed = again.add(WorkflowResumed, reason="resume")
    await fresh.append(h.run_id, [resumed], expected_sequence=7)
    assert await FileStorageBackend(tmp_path).read(h.run_id) == [*h.events[:-1], resumed]


async def test_another_runs_line_after_the_run_file_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = await suspended_run(tmp_path)
    stranger = History()
    with log_path(tmp_path, h.run_id).open("ab") as f:
        f.write(encode_event(started(stranger)) + b"\n")

    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events
    assert "event_log_garbage_skipped" in capsys.readouterr().err


async def test_a_read_makes_no_folders_unless_its_lock_folder_is_missing(tmp_path: Path) -> None:
    h = await suspended_run(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "events", tmp_path / "b" / "events")
    shutil.copytree(tmp_path / "a" / ".locks", tmp_path / "b" / ".locks")

    assert await FileStorageBackend(tmp_path / "b").read(h.run_id) == h.events
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [".locks", "events"]

    shutil.rmtree(tmp_path / "b" / ".locks")  # copied without it: made on first use
    assert await FileStorageBackend(tmp_path / "b").read(h.run_id) == h.events
    assert (tmp_path / "b" / ".locks" / f"{h.run_id}.append.lock").exists()


async def test_a_hook_payload_is_read_exactly_before_its_file_is_written(tmp_path: Path) -> None:
    """A hook's file is written when it is created and at the run's next flush point (a
    delivered payload is followed by the run's resumption), not for the payload itself:
    until then get_hook and list_hooks fold it from the log."""
    h = History()
    events = waiting_on_hook(h)
    hook_id = events[1].hook_id  # type: ignore[union-attr]
    writer = FileStorageBackend(tmp_path, durability="none")
    await append_all(writer, events)
    hook_file = tmp_path / "hooks" / f"{hook_id}.json"
    assert json.loads(hook_file.read_text())["status"] == "pending"

    received = h.add(HookReceived, hook_id=hook_id, checkpoint=1, payload=raw({"ok": True}))
    await writer.append(h.run_id, [received], expected_sequence=3)
    assert json.loads(hook_file.read_text())["status"] == "pending"  # not rewritten
    expected = project(None, h.events).hooks[hook_id]
    for reader in (writer, FileStorageBackend(tmp_path)):
        assert await reader.get_hook(hook_id) == expected
        assert await reader.list_hooks() == [expected]
        assert await reader.list_hooks(h.run_id) == [expected]

    resumed = h.add(WorkflowResumed, reason="woken")
    await FileStorageBackend(tmp_path).append(h.run_id, [resumed], expected_sequence=4)
    assert json.loads(hook_file.read_text())["status"] == "received"  # the flush point
    assert await FileStorageBackend(tmp_path).get_hook(hook_id) == expected
