"""Realistic event histories for storage tests, built with the event structs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from pyworkflow._core._events import (
    CancellationRequested,
    Event,
    HookCreated,
    HookExpired,
    HookReceived,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)

if TYPE_CHECKING:
    from pyworkflow.storage import FileStorageBackend


def raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def new_run_id() -> str:
    return f"run_{secrets.token_hex(8)}"


def new_hook_id() -> str:
    return f"hook_{secrets.token_hex(16)}"


class History:
    """Makes the events of one run with gap-free sequences and rising timestamps."""

    def __init__(self, run_id: str | None = None, *, start: datetime = T0) -> None:
        self.run_id = run_id or new_run_id()
        self.sequence = 0
        self.now = start
        self.events: list[Event] = []

    def make(self, cls: type[Any], **fields: Any) -> Any:
        """The next event (not recorded in ``events``: see :meth:`add`)."""
        return cls(
            run_id=self.run_id,
            sequence=self.sequence + 1,
            timestamp=self.now + timedelta(seconds=1),
            **fields,
        )

    def add(self, cls: type[Any], **fields: Any) -> Any:
        event = self.make(cls, **fields)
        self.sequence += 1
        self.now = event.timestamp
        self.events.append(event)
        return event

    def step_id(self, checkpoint: int) -> str:
        return f"{self.run_id}.{checkpoint}"

    def step(
        self, cls: type[Any], checkpoint: int, name: str, attempt: int = 1, **fields: Any
    ) -> Any:
        return self.add(
            cls,
            step_id=self.step_id(checkpoint),
            step_name=name,
            checkpoint=checkpoint,
            attempt=attempt,
            **fields,
        )


def started(h: History, name: str = "order_workflow", **fields: Any) -> Event:
    defaults: dict[str, Any] = {"args": raw(["order-1", 99.5]), "kwargs": raw({})}
    return h.add(WorkflowStarted, workflow_name=name, **{**defaults, **fields})  # type: ignore[no-any-return]


def full_history(h: History) -> tuple[list[Event], str]:
    """Every kind of event a completed run can have: steps, a retry, a sleep, a hook.

    Returns the events and the hook id.
    """
    started(h, tags=("shop",), idempotency_key="order-1")
    h.step(StepStarted, 1, "process_order")
    h.step(StepCompleted, 1, "process_order", result=raw({"order_id": "order-1"}))
    h.step(StepStarted, 2, "charge_payment")
    h.step(
        StepFailed,
        2,
        "charge_payment",
        error_type="TimeoutError",
        error_message="slow",
        final=False,
    )
    due = h.now + timedelta(seconds=30)
    h.step(StepRetrying, 2, "charge_payment", attempt=2, resume_at=due, delay=30.0)
    h.add(WorkflowSuspended, reason="retry", resume_at=due)
    h.add(WorkflowResumed, reason="resume")
    h.step(StepStarted, 2, "charge_payment", attempt=2)
    h.step(StepCompleted, 2, "charge_payment", attempt=2, result=raw({"charged": 99.5}))
    wake = h.now + timedelta(hours=1)
    h.add(SleepStarted, checkpoint=3, duration=3600.0, resume_at=wake)
    h.add(WorkflowSuspended, reason="sleep", resume_at=wake)
    h.add(WorkflowResumed, reason="resume")
    h.add(SleepCompleted, checkpoint=3)
    hook_id = new_hook_id()
    h.add(
        HookCreated,
        hook_id=hook_id,
        hook_name="approval",
        checkpoint=4,
        token=f"{h.run_id}:{hook_id}",
    )
    h.add(WorkflowSuspended, reason="hook")
    h.add(HookReceived, hook_id=hook_id, checkpoint=4, payload=raw({"approved": True}))
    h.add(WorkflowResumed, reason="woken")
    h.add(WorkflowCompleted, result=raw({"status": "done"}))
    return h.events, hook_id


def failed_history(h: History, name: str = "order_workflow") -> list[Event]:
    started(h, name)
    h.step(StepStarted, 1, "charge_payment")
    h.step(
        StepFailed, 1, "charge_payment", error_type="ValueError", error_message="card", final=True
    )
    h.add(WorkflowFailed, error_type="ValueError", error_message="card", traceback="tb")
    return h.events


def cancelled_history(h: History, name: str = "order_workflow") -> list[Event]:
    started(h, name)
    wake = h.now + timedelta(minutes=5)
    h.add(SleepStarted, checkpoint=1, duration=300.0, resume_at=wake)
    h.add(WorkflowSuspended, reason="sleep", resume_at=wake)
    h.add(CancellationRequested, reason="customer cancelled")
    h.add(WorkflowResumed, reason="woken")
    h.add(WorkflowCancelled, reason="customer cancelled")
    return h.events


def expired_hook_history(h: History) -> tuple[list[Event], str]:
    started(h)
    hook_id = new_hook_id()
    h.add(
        HookCreated,
        hook_id=hook_id,
        hook_name="approval",
        checkpoint=1,
        token=f"{h.run_id}:{hook_id}",
        expires_at=h.now + timedelta(minutes=1),
    )
    h.add(WorkflowSuspended, reason="hook", resume_at=h.now + timedelta(minutes=1))
    h.add(WorkflowResumed, reason="resume")
    h.add(HookExpired, hook_id=hook_id, checkpoint=1)
    return h.events, hook_id


def suspended_on_sleep(h: History, wake: datetime, name: str = "order_workflow") -> list[Event]:
    """A run suspended on a sleep until ``wake``."""
    started(h, name)
    h.add(SleepStarted, checkpoint=1, duration=(wake - h.now).total_seconds(), resume_at=wake)
    h.add(WorkflowSuspended, reason="sleep", resume_at=wake)
    return h.events


def waiting_on_hook(h: History, expires_at: datetime | None = None) -> list[Event]:
    """A run suspended on a hook (with a timeout at ``expires_at``, if given)."""
    started(h)
    hook_id = new_hook_id()
    token = f"{h.run_id}:{hook_id}"
    h.add(HookCreated, hook_id=hook_id, hook_name="approval", checkpoint=1, token=token,
          expires_at=expires_at)  # fmt: skip
    h.add(WorkflowSuspended, reason="hook", resume_at=expires_at)
    return h.events


async def append_all(backend: FileStorageBackend, events: list[Event]) -> None:
    """Append ``events`` one by one, each at its own sequence."""
    for event in events:
        await backend.append(event.run_id, [event], expected_sequence=event.sequence - 1)


def log_path(base: Path, run_id: str) -> Path:
    """The log file of ``run_id`` in a file store at ``base``."""
    return base / "events" / f"{run_id}.jsonl"
