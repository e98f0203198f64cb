"""``pyworkflow schedules list/pause/resume/trigger``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import msgspec

from .._core._schedule import Schedule
from .._exceptions import ScheduleNotFoundError, WorkflowNotRegisteredError
from .._schedule_api import list_schedules, pause_schedule, resume_schedule, trigger_schedule
from ._common import CliEnv, CommandFailed, ExitCode
from ._output import fmt_time, render_table

__all__ = [
    "cmd_schedules_list",
    "cmd_schedules_pause",
    "cmd_schedules_resume",
    "cmd_schedules_trigger",
]

T = TypeVar("T")


async def cmd_schedules_list(env: CliEnv) -> int:
    schedules = await list_schedules(storage=env.storage)
    if env.printer.as_json:
        env.printer.json([msgspec.to_builtins(s) for s in schedules])
        return ExitCode.OK
    if not schedules:
        env.printer.line("no schedules")
        return ExitCode.OK
    header = ("SCHEDULE", "WORKFLOW", "STATUS", "WHEN", "POLICY", "NEXT", "RUNS", "OK", "FAILED")
    env.printer.line(render_table(header, map(_row, schedules)))
    return ExitCode.OK


def _row(s: Schedule) -> tuple[str, ...]:
    return (
        s.schedule_id,
        s.workflow_name,
        s.status.value,
        s.spec.describe(),
        s.overlap_policy.value,
        fmt_time(s.next_run_time),
        str(s.total_runs),
        str(s.successful_runs),
        str(s.failed_runs),
    )


async def cmd_schedules_pause(env: CliEnv) -> int:
    schedule = await _found(pause_schedule(env.args.schedule_id, storage=env.storage))
    _report(env, schedule, f"schedule {schedule.schedule_id} paused")
    return ExitCode.OK


async def cmd_schedules_resume(env: CliEnv) -> int:
    schedule = await _found(resume_schedule(env.args.schedule_id, storage=env.storage))
    next_time = fmt_time(schedule.next_run_time)
    _report(env, schedule, f"schedule {schedule.schedule_id} active, next run {next_time}")
    return ExitCode.OK


async def cmd_schedules_trigger(env: CliEnv) -> int:
    """Start a run now; it executes here until it rests (its workflow's code must be
    importable: --app), as ``pyworkflow run`` does."""
    try:
        run_id = await _found(trigger_schedule(env.args.schedule_id, storage=env.storage))
    except WorkflowNotRegisteredError as exc:
        raise CommandFailed(f"{exc} (pass --app module:attribute)", ExitCode.USAGE) from None
    run = await env.storage.get_run(run_id)
    status = run.status.value if run is not None else "started"
    if env.printer.as_json:
        env.printer.json({"run_id": run_id, "status": status})
    else:
        env.printer.line(f"started run {run_id} ({status})")
    return ExitCode.OK


async def _found(call: Awaitable[T]) -> T:
    try:
        return await call
    except ScheduleNotFoundError as exc:
        raise CommandFailed(str(exc), ExitCode.NOT_FOUND) from None


def _report(env: CliEnv, schedule: Schedule, text: str) -> None:
    if env.printer.as_json:
        env.printer.json(msgspec.to_builtins(schedule))
    else:
        env.printer.line(text)
