"""FileStorageBackend's lazy record files: only the event log is written on every append.

Run, step and hook files are written at flush points (a run's status or cancellation flag
changes, a hook event, the log grown ``FLUSH_BYTES`` past the run file); between them the
files lag the log, and every read still returns the projection of the whole log, in this
process and in any other (simulated here by a second backend instance on the folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from pyworkflow import RunStatus, StepRecord, WorkflowRun
from pyworkflow._core._events import (
    CancellationRequested,
    Event,
    HookCreated,
    StepCompleted,
    StepStarted,
    WorkflowCompleted,
    WorkflowSuspended,
    encode_event,
)
from pyworkflow._core._projection import project
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._file._view import FLUSH_BYTES

from .helpers import (
    History,
    append_all,
    full_history,
    log_path,
    new_hook_id,
    raw,
    started,
)


def run_file(base: Path, run_id: str) -> WorkflowRun:
    return msgspec.json.decode((base / "runs" / f"{run_id}.json").read_bytes(), type=WorkflowRun)


def step_file(base: Path, step_id: str) -> StepRecord:
    return msgspec.json.decode((base / "steps" / f"{step_id}.json").read_bytes(), type=StepRecord)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def add_steps(h: History, first: int, count: int, pad: int = 0) -> list[Event]:
    events: list[Event] = []
    for checkpoint in range(first, first + count):
        events.append(h.step(StepStarted, checkpoint, "s"))
        result = raw({"i": checkpoint, "pad": "x" * pad})
        events.append(h.step(StepCompleted, checkpoint, "s", result=result))
    return events


# -- what an append writes ---------------------------------------------------------------------
async def test_only_flush_points_write_record_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[str] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        replaced.append(Path(dst).relative_to(tmp_path).as_posix())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    backend = FileStorageBackend(tmp_path, durability="none")
    h = History()
    await append_all(backend, [started(h)])
    assert replaced == []  # listable at once by its log; no run file before a flush point
    assert [r.run_id for r in await backend.list_runs()] == [h.run_id]

    replaced.clear()
    await append_all(backend, add_steps(h, 1, 20))
    assert replaced == []  # 40 appends: the log only
    assert names(tmp_path / "steps") == []

    hook_id = new_hook_id()
    await append_all(
        backend, [h.add(HookCreated, hook_id=hook_id, hook_name="x", checkpoint=21, token="t")]
    )
    assert replaced == [f"hooks/{hook_id}.json"]  # get_hook finds a hook by its id alone

    replaced.clear()
    await append_all(backend, [h.add(WorkflowSuspended, reason="hook")])
    steps = [f"steps/{h.step_id(c)}.json" for c in range(1, 21)]
    assert sorted(replaced[:-1]) == sorted(steps)
    assert replaced[-1] == f"runs/{h.run_id}.json"  # the run file last: it vouches for them

    expected = project(None, h.events)
    assert run_file(tmp_path, h.run_id) == expected.run
    assert all(step_file(tmp_path, i) == s for i, s in expected.steps.items())


async def test_a_long_stretch_without_flush_points_is_flushed_every_flush_bytes(
    tmp_path: Path,
) -> None:
    backend = FileStorageBackend(tmp_path, durability="none")
    h = History()
    await append_all(backend, [started(h)])
    events = add_steps(h, 1, 200, pad=400)  # ~1 KiB a step, no flush point
    await append_all(backend, events)

    size = log_path(tmp_path, h.run_id).stat().st_size
    assert size > 1.5 * FLUSH_BYTES
    log_end = msgspec.json.decode((tmp_path / "runs" / f"{h.run_id}.json").read_bytes())["log_end"]
    assert 0 < size - log_end < FLUSH_BYTES  # flushed on the way, so a cold reader folds little
    stored = run_file(tmp_path, h.run_id)
    assert 1 < stored.last_sequence < len(h.events)
    assert stored == project(None, h.events[: stored.last_sequence]).run
    assert len(names(tmp_path / "steps")) >= stored.step_count


# -- readers see the whole log ------------------------------------------------------------------
async def test_another_process_reads_the_full_projection_after_every_append(
    tmp_path: Path,
) -> None:
    writer, reader = FileStorageBackend(tmp_path), FileStorageBackend(tmp_path)
    events, hook_id = full_history(History())
    run_id = events[0].run_id
    for n, event in enumerate(events, start=1):
        await writer.append(run_id, [event], expected_sequence=n - 1)
        expected = project(None, events[:n])
        # A fresh process, and one that keeps its caches between appends.
        for backend in (reader, FileStorageBackend(tmp_path)):
            assert await backend.get_run(run_id) == expected.run, event.type
            for step_id, step in expected.steps.items():
                assert await backend.get_step(step_id) == step, (event.type, step_id)
            for hid, hook in expected.hooks.items():
                assert await backend.get_hook(hid) == hook, event.type
            assert list(await backend.list_runs()) == [expected.run], event.type
    assert (await reader.get_hook(hook_id)) is not None


async def test_a_log_ahead_of_its_records_after_a_crash_reads_exactly(tmp_path: Path) -> None:
    """A process died after writing events and before the next flush point: the record
    files are behind the log (as they are between flush points anyway). Every read is
    still the projection of the whole log, and reading writes nothing; the next flush
    point brings the files up to date."""
    backend = FileStorageBackend(tmp_path)
    h = History()
    await append_all(backend, [started(h)])
    with log_path(tmp_path, h.run_id).open("ab") as f:  # what the dead process wrote
        f.write(b"".join(encode_event(e) + b"\n" for e in add_steps(h, 1, 3)))

    fresh = FileStorageBackend(tmp_path)
    expected = project(None, h.events)
    assert await fresh.get_run(h.run_id) == expected.run and expected.run.step_count == 3
    for step_id, step in expected.steps.items():
        assert await fresh.get_step(step_id) == step
    assert list(await FileStorageBackend(tmp_path).list_runs()) == [expected.run]
    assert names(tmp_path / "runs") == []  # reading wrote nothing
    assert names(tmp_path / "steps") == []

    await append_all(fresh, [h.add(WorkflowSuspended, reason="sleep")])

    expected = project(None, h.events)
    assert run_file(tmp_path, h.run_id) == expected.run
    assert all(step_file(tmp_path, i) == s for i, s in expected.steps.items())


async def test_a_flush_point_lost_in_a_crash_is_repaired_by_the_next_read(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    h = History()
    await append_all(backend, [started(h), *add_steps(h, 1, 2)])
    done = h.add(WorkflowCompleted, result=raw("ok"))
    with log_path(tmp_path, h.run_id).open("ab") as f:  # died before writing its records
        f.write(encode_event(done) + b"\n")

    run = await FileStorageBackend(tmp_path).get_run(h.run_id)

    expected = project(None, h.events)
    assert run == expected.run and run.status is RunStatus.COMPLETED
    assert run_file(tmp_path, h.run_id) == expected.run
    assert names(tmp_path / "steps") == [f"{h.run_id}.1.json", f"{h.run_id}.2.json"]


async def test_a_run_whose_run_file_was_never_written_is_listed(tmp_path: Path) -> None:
    """A run before its first flush point has no run file (and one whose process died
    then never gets one by itself): it exists (its log says so), so it is listed and read;
    reads write nothing, the run's next flush point writes its run file."""
    backend = FileStorageBackend(tmp_path)
    listed, h = History(), History()
    await append_all(backend, [started(listed)])
    first = started(h)
    await append_all(FileStorageBackend(tmp_path), [first])  # by another process
    assert not (tmp_path / "runs" / f"{h.run_id}.json").exists()

    page = await FileStorageBackend(tmp_path).list_runs()
    assert {r.run_id for r in page} == {listed.run_id, h.run_id}
    assert not (tmp_path / "runs" / f"{h.run_id}.json").exists()  # listing writes nothing
    assert await FileStorageBackend(tmp_path).get_run(h.run_id) == project(None, [first]).run
    assert not (tmp_path / "runs" / f"{h.run_id}.json").exists()
    done = h.add(WorkflowCompleted, result=raw("ok"))
    await FileStorageBackend(tmp_path).append(h.run_id, [done], expected_sequence=1)
    assert run_file(tmp_path, h.run_id) == project(None, [first, done]).run


async def test_a_run_file_that_does_not_fit_its_log_is_not_trusted(tmp_path: Path) -> None:
    """A run file without log_end (an older version), or ahead of its log (which lost its
    tail to a power loss with durability="none"): the log is folded again."""
    backend = FileStorageBackend(tmp_path)
    h = History()
    await append_all(backend, [started(h), *add_steps(h, 1, 3)])
    cancel = h.add(CancellationRequested, reason="stop")
    await append_all(backend, [cancel])  # a flush point
    path = tmp_path / "runs" / f"{h.run_id}.json"
    log = log_path(tmp_path, h.run_id)

    # An older version's run file (no log_end) is trusted only at the log's last event.
    old = msgspec.json.decode(path.read_bytes())
    del old["log_end"]
    path.write_bytes(msgspec.json.encode(old))
    assert await FileStorageBackend(tmp_path).get_run(h.run_id) == project(None, h.events).run
    assert "log_end" not in msgspec.json.decode(path.read_bytes())  # it fitted: no rewrite
    behind = project(None, h.events[:5]).run  # the run file said step 2 was running
    path.write_bytes(msgspec.json.encode(behind))
    assert await FileStorageBackend(tmp_path).get_run(h.run_id) == project(None, h.events).run
    assert "log_end" in msgspec.json.decode(path.read_bytes())  # rebuilt by that read

    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]))  # the log lost its last events, the run file not
    fresh = FileStorageBackend(tmp_path)
    assert await fresh.get_run(h.run_id) == project(None, h.events[:3]).run
    assert await fresh.get_step(h.step_id(2)) is None  # its step file is not trusted either
    assert await fresh.get_step(h.step_id(1)) == project(None, h.events[:3]).steps[h.step_id(1)]
    assert not (tmp_path / "steps" / f"{h.step_id(2)}.json").exists()  # deleted by the read


async def test_a_writer_after_a_lost_tail_does_not_fold_onto_lost_records(tmp_path: Path) -> None:
    """The log lost its tail (a power loss with durability="none") after step 2's file was
    written: the step runs again, and its record is folded from scratch, not onto the lost
    attempt's file."""
    backend = FileStorageBackend(tmp_path, durability="none")
    h = History()
    await append_all(backend, [started(h), *add_steps(h, 1, 2)])
    await append_all(backend, [h.add(CancellationRequested, reason="stop")])  # a flush point
    assert step_file(tmp_path, h.step_id(2)).result == {"i": 2, "pad": ""}
    log = log_path(tmp_path, h.run_id)
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:3]))

    again = History(h.run_id, start=h.events[2].timestamp)
    again.sequence = 3
    rerun = again.step(StepStarted, 2, "s")
    writer = FileStorageBackend(tmp_path, durability="none")
    await writer.append(h.run_id, [rerun], expected_sequence=3)

    expected = project(None, [*h.events[:3], rerun])
    assert expected.steps[h.step_id(2)].result is None  # not the lost attempt's result
    assert await writer.get_step(h.step_id(2)) == expected.steps[h.step_id(2)]
    assert await FileStorageBackend(tmp_path).get_step(h.step_id(2)) == expected.steps[h.step_id(2)]
    assert step_file(tmp_path, h.step_id(2)) == expected.steps[h.step_id(2)]  # rewritten
    assert run_file(tmp_path, h.run_id) == expected.run


async def test_garbage_lines_that_join_into_an_event_are_still_skipped(tmp_path: Path) -> None:
    backend = FileStorageBackend(tmp_path)
    h = History()
    await append_all(backend, [started(h)])
    line = encode_event(
        h.make(StepStarted, step_id=h.step_id(1), step_name="a", checkpoint=1, attempt=1)
    )
    cut = line.index(b',"step_name"')  # two halves that a "," joins into the event
    with log_path(tmp_path, h.run_id).open("ab") as f:
        f.write(line[:cut] + b"\n" + line[cut + 1 :] + b"\n")

    assert await FileStorageBackend(tmp_path).read(h.run_id) == h.events


async def test_a_run_before_its_first_flush_point_reads_quietly_from_other_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No run file yet is a running run's normal state: another instance (another process)
    reads it from the log without calling it rebuilt and without writing anything; past a
    flush point, a missing run file is still repaired by the next read."""
    writer = FileStorageBackend(tmp_path, durability="none")
    h = History()
    await append_all(writer, [started(h), *add_steps(h, 1, 2)])
    expected = project(None, h.events)
    reader = FileStorageBackend(tmp_path, durability="none")
    assert await reader.get_run(h.run_id) == expected.run
    assert await reader.get_step(h.step_id(1)) == expected.steps[h.step_id(1)]
    assert names(tmp_path / "runs") == [] and names(tmp_path / "steps") == []
    assert "rebuilt" not in capsys.readouterr().err

    await append_all(writer, [h.add(WorkflowSuspended, reason="sleep")])  # a flush point
    (tmp_path / "runs" / f"{h.run_id}.json").unlink()  # lost
    assert await FileStorageBackend(tmp_path).get_run(h.run_id) == project(None, h.events).run
    assert "run_records_rebuilt" in capsys.readouterr().err
    assert run_file(tmp_path, h.run_id) == project(None, h.events).run  # repaired
