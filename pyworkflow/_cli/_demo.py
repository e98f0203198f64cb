"""``pyworkflow demo``: the main job, in an embedded Supervisor on file storage (no broker).

An order workflow runs two steps, sleeps durably, waits for an approval hook, then ships.
Nobody calls ``resume()``: the supervisor's timer wakes the sleep, and an approver task
delivers the hook payload with ``sup.resume_hook``. A watcher tails the run's event log and
narrates each event as it is written, so every event type printed comes from the log.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

import anyio
import msgspec

from .._core._events import (
    Event,
    HookCreated,
    HookReceived,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)
from .._execution._hooks import hook
from .._execution._sleep import sleep
from .._execution._step import step
from .._execution._workflow import workflow
from ..actors import Supervisor
from ..storage import FileStorageBackend, StorageBackend
from ._output import fmt_value

__all__ = ["run_demo"]

_TICK = 0.05  # how often the watcher and the approver look at the storage
_APPROVER_DELAY = 0.5  # how long the approver "reads" the request before approving
_FINAL = (WorkflowCompleted, WorkflowFailed, WorkflowCancelled)


class Say(Protocol):
    """Prints one line of the story, stamped with the time since the demo started."""

    def __call__(self, text: str, at: datetime | None = None) -> None: ...


@step(name="demo.reserve_inventory")
async def reserve_inventory(order_id: str) -> dict[str, object]:
    return {"order_id": order_id, "reserved": True}


@step(name="demo.charge_payment", max_retries=2, retry_delay="1s")
async def charge_payment(order: dict[str, object], amount: float) -> dict[str, object]:
    return {**order, "charged": amount}


@step(name="demo.ship")
async def ship(order: dict[str, object], approved_by: str) -> dict[str, object]:
    return {**order, "approved_by": approved_by, "shipped": True}


@workflow(name="demo.order", durable=True, tags=["demo"])
async def demo_order(order_id: str, amount: float, wait_seconds: float) -> dict[str, object]:
    order = await reserve_inventory(order_id)
    order = await charge_payment(order, amount)
    await sleep(wait_seconds)  # a durable timer: the run suspends, the supervisor wakes it
    approval = await hook("approval", timeout="1h")  # suspends until the payload arrives
    return await ship(order, str(approval["by"]))


async def run_demo(base_path: Path, wait_seconds: float = 1.5, out: TextIO = sys.stdout) -> str:
    """Run the demo in an embedded supervisor and return the run id."""
    storage = FileStorageBackend(base_path)
    print(
        f"demo: an order workflow in an embedded Supervisor on file storage {base_path}/\n"
        "nobody calls resume(): the supervisor wakes the sleep, an approver task sends the "
        "hook payload\n",
        file=out,
    )
    async with Supervisor(storage=storage) as sup:
        t0 = sup.clock.now()

        def say(text: str, at: datetime | None = None) -> None:
            elapsed = ((at or sup.clock.now()) - t0).total_seconds()
            print(f"  +{elapsed:5.2f}s  {text}", file=out, flush=True)

        run_id = await sup.start(demo_order, "order-1001", 42.5, wait_seconds)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, storage, run_id, say)
            tg.start_soon(_approve, sup, storage, run_id, say)
            result = await sup.result(run_id, timeout=wait_seconds + 30)
        # the watcher has printed the last event by now
        print(f"\nsup.result({run_id!r}) -> {fmt_value(result, 200)}", file=out)
    events = await storage.read(run_id)
    print(f"\nevent log ({len(events)} events, as stored):", file=out)
    for event in events:
        print(f"  {event.sequence:>2} {event.type.value}", file=out)
    _show_files(base_path, run_id, out)
    return run_id


async def _watch(storage: StorageBackend, run_id: str, say: Say) -> None:
    """Print each event of the run as it appears in the log, until the run ends."""
    seen = 0
    while True:
        for event in await storage.read(run_id, after=seen):
            seen = event.sequence
            say(f"{event.type.value:<19} {_narrate(event)}".rstrip(), event.timestamp)
            if isinstance(event, _FINAL):
                return
        await anyio.sleep(_TICK)


async def _approve(sup: Supervisor, storage: StorageBackend, run_id: str, say: Say) -> None:
    """A second party: finds the run's pending approval (as ``pyworkflow hooks list``
    would), takes a moment, then sends the payload through the supervisor."""
    while True:
        pending = [h for h in await storage.list_hooks(run_id) if h.hook_name == "approval"]
        if pending:
            break
        await anyio.sleep(_TICK)
    await anyio.sleep(_APPROVER_DELAY)
    say("(approver) sup.resume_hook(token, {'approved': True, 'by': 'dana'})")
    await sup.resume_hook(pending[0].token, {"approved": True, "by": "dana"})


def _narrate(event: Event) -> str:
    match event:
        case WorkflowStarted():
            return f"{event.workflow_name}{_args(event.args)} as {event.run_id}"
        case StepStarted():
            return f"{event.step_name} (attempt {event.attempt})"
        case StepCompleted():
            return f"{event.step_name} ran -> {fmt_value(event.result, 80)}"
        case SleepStarted():
            until = event.resume_at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
            return f"sleeping {event.duration:g}s, until {until}Z"
        case SleepCompleted():
            return "woke up: the timer fired by itself"
        case HookCreated():
            return f"waiting for {event.hook_name!r} (an approver has the token)"
        case HookReceived():
            return f"approval received: {fmt_value(event.payload, 80)}"
        case WorkflowSuspended():
            return f"the run rests on its {event.reason}; its actor task ends until woken"
        case WorkflowResumed():
            return "the supervisor woke it"
        case WorkflowCompleted():
            return f"result {fmt_value(event.result, 80)}"
        case _:
            return ""


def _args(raw: msgspec.Raw) -> str:
    values = msgspec.json.decode(raw)
    return "(" + ", ".join(fmt_value(v) for v in values) + ")"


def _show_files(base_path: Path, run_id: str, out: TextIO) -> None:
    print(f"\nfiles of this run under {base_path}:", file=out)
    for path in sorted(base_path.rglob("*")):
        if path.is_file() and run_id in path.read_text(errors="replace"):
            print(f"  {path.relative_to(base_path)}", file=out)
