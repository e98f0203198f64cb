"""The module-level schedule API: create, inspect, pause, resume, delete, trigger.

A schedule fires by itself wherever a runtime hosts its storage: a ``Supervisor`` (and so
``LocalScheduler``) in this process, or the ``pyworkflow worker`` that owns the schedule's
partition on Kafka. See ``_execution._scheduling`` for how a due time fires exactly once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ._config import default_storage, host_for, settings, state_cache
from ._core._schedule import (
    OverlapPolicy,
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    check_schedule_id,
    due_after,
)
from ._exceptions import ConfigurationError, ConflictError, ScheduleNotFoundError
from ._exceptions import WorkflowNotRegisteredError as _NotRegistered
from ._execution._engine import Engine
from ._execution._registry import registry
from ._execution._scheduling import ScheduleFirer
from ._execution._workflow import Workflow
from .storage import StorageBackend

__all__ = [
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
]

_RETRIES = 20


def _store(storage: StorageBackend | None) -> StorageBackend:
    return storage if storage is not None else default_storage()


async def create_schedule(
    *,
    workflow_name: str,
    spec: ScheduleSpec,
    overlap_policy: OverlapPolicy | str = OverlapPolicy.SKIP,
    schedule_id: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    storage: StorageBackend | None = None,
) -> Schedule:
    """Create a schedule that starts runs of ``workflow_name`` with ``args``/``kwargs``.

    It fires by itself where a runtime hosts the storage (``LocalScheduler``, a
    ``Supervisor``, Kafka workers): one run per due time, exactly once, with the overlap
    policy deciding what a due time does while an earlier run is unfinished.

    Args:
        workflow_name: the name of a durable ``@workflow`` defined in this process.
        spec: when it is due (``ScheduleSpec(cron=...)`` or ``ScheduleSpec(interval=...)``).
        overlap_policy: an ``OverlapPolicy`` (or its value, e.g. ``"skip"``).
        schedule_id: its id (letters, digits, ``_ . -``); default a generated one.
        args, kwargs: the arguments of each run (checked against the workflow's signature
            and encoded now).
        storage: use this backend instead of the configured one.

    Raises:
        WorkflowNotRegisteredError: no workflow of that name is defined in this process.
        ConfigurationError: a bad spec, policy or id, a transient workflow, or an id that
            another schedule has.
        TypeError / SerializationError: the arguments don't fit or can't be stored.
    """
    if isinstance(workflow_name, Workflow):
        workflow_name = workflow_name.name
    wf = registry.workflow(workflow_name) if isinstance(workflow_name, str) else None
    if wf is None:
        raise _unknown_workflow(workflow_name)
    if not wf.is_durable():
        msg = (
            f"workflow {workflow_name!r} is transient (durable=False): a schedule starts "
            "durable runs; decorate it with @workflow(durable=True)"
        )
        raise ConfigurationError(msg)
    if not isinstance(spec, ScheduleSpec):
        msg = (
            f"create_schedule(spec={spec!r}): pass a ScheduleSpec, e.g. "
            "ScheduleSpec(cron='0 9 * * *') or ScheduleSpec(interval='5m')"
        )
        raise ConfigurationError(msg)
    policy = _policy(overlap_policy)
    schedule_id = check_schedule_id(
        schedule_id if schedule_id is not None else f"sched_{secrets.token_hex(8)}"
    )
    call_args, call_kwargs = tuple(args), dict(kwargs or {})
    wf.codec.bind(wf.name, call_args, call_kwargs)
    raw_args, raw_kwargs = wf.codec.encode_args(wf.name, call_args, call_kwargs)
    now = settings().clock.now()
    schedule = Schedule(
        schedule_id=schedule_id,
        workflow_name=wf.name,
        spec=spec,
        overlap_policy=policy,
        args=msgspec.json.decode(raw_args),
        kwargs=msgspec.json.decode(raw_kwargs),
        created_at=now,
        updated_at=now,
        next_run_time=due_after(spec, spec.start_at or now, now),
    )
    try:
        await _store(storage).save_schedule(schedule)
    except ConflictError:
        msg = (
            f"a schedule with id {schedule_id!r} exists already: pick another id, or "
            f"delete_schedule({schedule_id!r}) first"
        )
        raise ConfigurationError(msg) from None
    settings().log.info("schedule_created", schedule_id=schedule_id, workflow=wf.name)
    return schedule


async def get_schedule(
    schedule_id: str, *, storage: StorageBackend | None = None
) -> Schedule | None:
    """The schedule's record, or None for an unknown id."""
    return await _store(storage).get_schedule(schedule_id)


async def list_schedules(
    *,
    workflow_name: str | None = None,
    status: ScheduleStatus | str | None = None,
    storage: StorageBackend | None = None,
) -> list[Schedule]:
    """Schedules by id, optionally only those of one workflow or with one status."""
    wanted = ScheduleStatus(status) if status is not None else None
    return [
        s
        for s in await _store(storage).list_schedules()
        if (workflow_name is None or s.workflow_name == workflow_name)
        and (wanted is None or s.status is wanted)
    ]


async def pause_schedule(schedule_id: str, *, storage: StorageBackend | None = None) -> Schedule:
    """Stop firing the schedule (its running runs go on). Returns the updated record.

    Raises:
        ScheduleNotFoundError: no such schedule.
    """
    return await _update(
        _store(storage), schedule_id, lambda s, _: _replace(s, status=ScheduleStatus.PAUSED)
    )


async def resume_schedule(
    schedule_id: str, *, storage: StorageBackend | None = None
) -> Schedule:
    """Fire the schedule again, from its first due time after now (the times that passed
    while it was paused are not caught up). Returns the updated record.

    Raises:
        ScheduleNotFoundError: no such schedule.
    """

    def resumed(s: Schedule, now: Any) -> Schedule:
        if s.status is ScheduleStatus.ACTIVE:
            return s
        upcoming = due_after(s.spec, s.anchor, now)
        return _replace(s, status=ScheduleStatus.ACTIVE, next_run_time=upcoming)

    return await _update(_store(storage), schedule_id, resumed)


async def delete_schedule(schedule_id: str, *, storage: StorageBackend | None = None) -> None:
    """Delete the schedule; the runs it started stay (and go on).

    Raises:
        ScheduleNotFoundError: no such schedule.
    """
    if not await _store(storage).delete_schedule(schedule_id):
        raise ScheduleNotFoundError(schedule_id)
    settings().log.info("schedule_deleted", schedule_id=schedule_id)


async def trigger_schedule(schedule_id: str, *, storage: StorageBackend | None = None) -> str:
    """Start a run of the schedule now and return its run id, whatever its status, next
    due time and overlap policy (the run counts in its ``total_runs``).

    As ``start()`` does, the call executes the run until it rests (completes, fails or
    suspends); with a ``Supervisor`` open on the storage, the run's actor does.

    Raises:
        ScheduleNotFoundError: no such schedule.
    """
    store = _store(storage)
    host = host_for(store)
    engine = Engine(store, settings(), state_cache())
    firer = ScheduleFirer(store, engine.clock, engine.log, _Inline(engine))
    run_id = await firer.trigger(schedule_id)
    if host is not None:
        await host.host_started_and_rest(run_id)
    else:
        await engine.follow(run_id, fresh=True)
    return run_id


class _Inline:
    """A Launcher for calls without a supervisor: the caller executes what it starts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def launch(self, run_id: str) -> None:
        await self.engine.follow(run_id, fresh=True)

    async def request_cancel(self, run_id: str, reason: str) -> None:
        await self.engine.cancel(run_id, reason)


async def _update(
    store: StorageBackend, schedule_id: str, change: Callable[[Schedule, Any], Schedule]
) -> Schedule:
    """Compare-and-set ``change(record, now)`` onto the stored record, retried on conflicts."""
    clock = settings().clock
    for _ in range(_RETRIES):
        current = await store.get_schedule(schedule_id)
        if current is None:
            raise ScheduleNotFoundError(schedule_id)
        now = clock.now()
        changed = change(current, now)
        if changed is current:
            return current
        saved = _replace(changed, revision=current.revision + 1, updated_at=now)
        try:
            await store.save_schedule(saved)
        except ConflictError:
            continue
        return saved
    msg = f"schedule {schedule_id!r} kept changing under this call: try again"
    raise ConflictError(msg)


def _replace(schedule: Schedule, **changes: Any) -> Schedule:
    return msgspec.structs.replace(schedule, **changes)


def _policy(value: OverlapPolicy | str) -> OverlapPolicy:
    try:
        return OverlapPolicy(value)
    except ValueError:
        names = ", ".join(f"OverlapPolicy.{p.name}" for p in OverlapPolicy)
        msg = f"overlap_policy={value!r} is not an overlap policy: pass one of {names}"
        raise ConfigurationError(msg) from None


def _unknown_workflow(name: object) -> _NotRegistered:
    error = _NotRegistered(str(name))
    names = registry.workflow_names()
    known = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") or "none yet"
    error.args = (
        f"create_schedule(workflow_name={name!r}): no @workflow with that name is defined in "
        f"this process (defined: {known}); import the module that defines it first, and "
        "pass its name (@workflow(name=...) or the function's name)",
    )
    return error
