"""Child processes for the crash tests: ``python -m tests.storage._crash_child CMD ...``.

Run from the repo root. Environment:

* ``CRASH_COUNTER``: a file each step appends its name to (one line per execution).
* ``CRASH_BLOCK``: while this file exists, ``charge_payment`` waits after its side effect.
* ``CRASH_CLOCK_OFFSET``: seconds added to the wall clock (a sleep of 1h is due at once).

Exit codes: 0 done, 3 the run was locked by another process.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec

from pyworkflow import (
    RunLockedError,
    configure,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import StepCompleted, StepStarted, encode_event
from pyworkflow.storage import FileStorageBackend

LOCKED_EXIT = 3


class OffsetClock:
    """The wall clock moved ahead by ``offset`` seconds."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def touch(path: str) -> None:
    Path(path).touch()


def exists(path: str) -> bool:
    return os.path.exists(path)


async def wait_for(path: str, *, present: bool) -> None:
    """Poll for a file another process creates or deletes."""
    while exists(path) != present:  # noqa: ASYNC110 (no in-process event to wait on)
        await anyio.sleep(0.005)


def side_effect(name: str) -> None:
    fd = os.open(os.environ["CRASH_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{name}\n".encode())
    finally:
        os.close(fd)


@step(name="crash.process_order")
async def process_order(order_id: str) -> dict[str, Any]:
    side_effect("process_order")
    return {"order_id": order_id}


@step(name="crash.charge_payment")
async def charge_payment(order: dict[str, Any]) -> dict[str, Any]:
    side_effect("charge_payment")
    block = os.environ.get("CRASH_BLOCK")
    if block:
        await wait_for(block, present=False)
    return {**order, "charged": True}


@step(name="crash.send_notification")
async def send_notification(order: dict[str, Any]) -> dict[str, Any]:
    side_effect("send_notification")
    return {**order, "notified": True}


@workflow(name="crash.order", durable=True)
async def order(order_id: str) -> dict[str, Any]:
    placed = await process_order(order_id)
    charged = await charge_payment(placed)
    return await send_notification(charged)


@workflow(name="crash.sleepy_order", durable=True)
async def sleepy_order(order_id: str) -> dict[str, Any]:
    placed = await process_order(order_id)
    await sleep("1h")
    charged = await charge_payment(placed)
    return await send_notification(charged)


WORKFLOWS = {"order": order, "sleepy_order": sleepy_order}


def setup(base: str) -> FileStorageBackend:
    storage = FileStorageBackend(base)
    configure(storage=storage, clock=OffsetClock(float(os.environ.get("CRASH_CLOCK_OFFSET", 0))))
    return storage


async def cmd_start(base: str, name: str, key: str = "", go: str = "") -> None:
    setup(base)
    if go:  # start together with the other children: wait for the parent's signal
        touch(f"{go}.ready.{os.getpid()}")
        await wait_for(go, present=True)
    run_id = await start(WORKFLOWS[name], "order-1", idempotency_key=key or None)
    print(run_id, flush=True)


async def cmd_resume(base: str, run_id: str) -> None:
    setup(base)
    try:
        await resume(run_id)
    except RunLockedError as exc:
        print(f"locked: {exc}", flush=True)
        sys.exit(LOCKED_EXIT)
    run = await get_workflow_run(run_id)
    assert run is not None
    print(run.status.value, flush=True)


async def cmd_append_loop(base: str, run_id: str, pad: int) -> None:
    """Append big events as fast as possible until killed."""
    storage = FileStorageBackend(base, durability="none")
    seq = len(await storage.read(run_id))
    blob = msgspec.Raw(b'"' + b"x" * pad + b'"')
    while True:
        event = StepCompleted(
            run_id=run_id,
            sequence=seq + 1,
            timestamp=datetime.now(UTC),
            step_id=f"{run_id}.{seq + 1}",
            step_name="bulk",
            checkpoint=seq + 1,
            attempt=1,
            result=blob,
        )
        await storage.append(run_id, [event], expected_sequence=seq)
        seq += 1


async def cmd_append_batches(base: str, run_id: str, pad: int) -> None:
    """Append a step's two events per append (the second one big, so a write spans pages),
    as fast as possible until killed; the log's 64 KiB flushes write its run file."""
    storage = FileStorageBackend(base, durability="none")
    seq = len(await storage.read(run_id))
    blob = msgspec.Raw(b'"' + b"x" * pad + b'"')
    while True:
        checkpoint = seq // 2 + 1
        fields: dict[str, Any] = {
            "run_id": run_id,
            "timestamp": datetime.now(UTC),
            "step_id": f"{run_id}.{checkpoint}",
            "step_name": "bulk",
            "checkpoint": checkpoint,
            "attempt": 1,
        }
        batch = [
            StepStarted(sequence=seq + 1, **fields),
            StepCompleted(sequence=seq + 2, result=blob, **fields),
        ]
        await storage.append(run_id, batch, expected_sequence=seq)
        seq += 2


async def cmd_torn_self(base: str, run_id: str) -> None:
    """Write half an event line, as a crash in the middle of write() would, and die."""
    storage = FileStorageBackend(base)
    events = await storage.read(run_id)
    seq = events[-1].sequence
    line = encode_event(
        StepCompleted(
            run_id=run_id,
            sequence=seq + 1,
            timestamp=datetime.now(UTC),
            step_id=f"{run_id}.9",
            step_name="torn",
            checkpoint=9,
            attempt=1,
        )
    )
    fd = os.open(Path(base) / "events" / f"{run_id}.jsonl", os.O_WRONLY | os.O_APPEND)
    os.write(fd, line[: len(line) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL")


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "start":
        anyio.run(cmd_start, *args)
    elif command == "resume":
        anyio.run(cmd_resume, *args)
    elif command == "append-loop":
        anyio.run(cmd_append_loop, args[0], args[1], int(args[2]))
    elif command == "append-batches":
        anyio.run(cmd_append_batches, args[0], args[1], int(args[2]))
    elif command == "torn-self":
        anyio.run(cmd_torn_self, *args)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
