"""Read-only commands: ``runs list``, ``runs show`` and ``events [--follow]``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .._config import settings
from .._core._events import Event
from .._core._records import RunStatus, WorkflowRun
from .._core._replay import Kind, RunState, fold
from .._follow import follow_events, is_final
from ..storage import StorageBackend
from ._common import CliEnv, CommandFailed, ExitCode
from ._output import fmt_duration, fmt_time, fmt_value, render_table

__all__ = [
    "cmd_events",
    "cmd_runs_list",
    "cmd_runs_show",
    "describe_waiting",
    "find_run",
    "is_final",
    "require_run",
    "run_document",
    "run_info",
    "waiting_text",
]


def run_document(run: WorkflowRun) -> dict[str, Any]:
    """A run record as plain JSON values, with its ``error`` line."""
    doc: dict[str, Any] = msgspec.to_builtins(run)
    doc["error"] = run.error
    return doc


async def find_run(storage: StorageBackend, desc: str, run_id: str) -> WorkflowRun:
    """The run's record; raises ``CommandFailed`` (not found) naming the storage ``desc``."""
    run = await storage.get_run(run_id)
    if run is None:
        msg = (
            f"no run {run_id!r} in storage {desc}; check the id "
            "(pyworkflow runs list) and --storage"
        )
        raise CommandFailed(msg, ExitCode.NOT_FOUND)
    return run


async def require_run(env: CliEnv, run_id: str) -> WorkflowRun:
    return await find_run(env.storage, env.storage_desc, run_id)


def _now() -> datetime:
    return settings().clock.now()


# -- runs list ---------------------------------------------------------------------------
def run_info(run: WorkflowRun) -> str:
    """The INFO column of ``runs list``: error, wait, result or successor."""
    if run.error:
        return run.error
    if run.status is RunStatus.SUSPENDED:
        waits = run.suspended_reason or "?"
        return f"{waits} until {fmt_time(run.resume_at)}" if run.resume_at else waits
    if run.status is RunStatus.COMPLETED:
        return f"result {fmt_value(run.result, 40)}"
    if run.continued_to_run_id:
        return f"continued as {run.continued_to_run_id}"
    return ""


async def cmd_runs_list(env: CliEnv) -> int:
    args = env.args
    page = await env.storage.list_runs(
        status=RunStatus(args.status) if args.status else None,
        workflow_name=args.workflow,
        limit=args.limit,
        cursor=args.cursor,
    )
    if env.printer.as_json:
        env.printer.json(
            {"runs": [run_document(r) for r in page.runs], "next_cursor": page.next_cursor}
        )
        return ExitCode.OK
    if not page.runs:
        env.printer.line(f"no runs in {env.storage_desc} matching these filters")
        return ExitCode.OK
    rows = [
        (
            r.run_id,
            r.workflow_name,
            r.status.value,
            str(r.step_count),
            fmt_time(r.created_at),
            fmt_time(r.updated_at),
            run_info(r),
        )
        for r in page.runs
    ]
    headers = ("RUN ID", "WORKFLOW", "STATUS", "STEPS", "CREATED", "UPDATED", "INFO")
    env.printer.line(render_table(headers, rows))
    if page.next_cursor:
        env.printer.line(f"(more: pyworkflow runs list --cursor {page.next_cursor})")
    return ExitCode.OK


# -- runs show ---------------------------------------------------------------------------
def describe_waiting(state: RunState, now: datetime) -> list[dict[str, Any]]:
    """What a run waits for (suspended) or executes (running), one item per checkpoint."""
    items: list[dict[str, Any]] = []
    if state.finished:
        return items
    for index in sorted(state.checkpoints):
        cp = state.checkpoints[index]
        if cp.resolved:
            continue
        if index in state.waiting:
            kind = "retry" if cp.kind is Kind.STEP else str(cp.kind)
            item: dict[str, Any] = {"kind": kind, "name": cp.name, "checkpoint": index}
            if cp.kind is Kind.STEP:
                item["attempt"] = cp.attempts + 1
            if cp.token is not None:
                item["token"] = cp.token
            if cp.due is not None:
                item["due"] = cp.due
                item["due_in_seconds"] = round((cp.due - now).total_seconds(), 3)
            items.append(item)
        elif cp.kind is Kind.CHILD:
            child = {"kind": "child_workflow", "name": cp.name, "checkpoint": index}
            items.append({**child, "child_run_id": cp.child_run_id})
        elif cp.kind is Kind.STEP and cp.attempts:
            items.append(
                {"kind": "step", "name": cp.name, "checkpoint": index, "attempt": cp.attempts}
            )
    return items


def waiting_text(item: dict[str, Any]) -> str:
    """One item of ``describe_waiting`` in words."""
    kind, name, index = item["kind"], item["name"], item["checkpoint"]
    due = item.get("due")
    when = ""
    if due is not None:
        left = item["due_in_seconds"]
        word = {"sleep": "until", "hook": "expires"}.get(kind, "at")
        when = f" {word} {fmt_time(due)} " + (
            f"(in {fmt_duration(left)})" if left > 0 else "(due now: pyworkflow resume)"
        )
    if kind == "sleep":
        return f"sleep (checkpoint {index}){when}"
    if kind == "hook":
        return f"hook {name!r} (checkpoint {index}), token {item['token']}{when}"
    if kind == "child_workflow":
        return f"child workflow {name!r}, run {item['child_run_id']} (checkpoint {index})"
    if kind == "retry":
        return f"retry of step {name!r}, attempt {item['attempt']} (checkpoint {index}){when}"
    return f"step {name!r} in flight, attempt {item['attempt']} (checkpoint {index})"


def _show_lines(
    run: WorkflowRun,
    events: list[Event],
    waiting: list[dict[str, Any]],
    now: datetime,
    children: list[WorkflowRun],
) -> list[tuple[str, str]]:
    end = run.completed_at or now
    lines = [
        ("run", run.run_id),
        ("workflow", run.workflow_name),
        ("status", run.status.value),
        ("created", fmt_time(run.created_at)),
        ("updated", fmt_time(run.updated_at)),
        ("completed", fmt_time(run.completed_at)),
        (
            "duration",
            fmt_duration((end - run.created_at).total_seconds())
            + ("" if run.completed_at else " so far"),
        ),
        ("steps", f"{run.step_count} completed, {len(events)} events"),
        ("args", fmt_value(run.args) + (f" {fmt_value(run.kwargs)}" if run.kwargs else "")),
    ]
    if run.tags:
        lines.append(("tags", ", ".join(run.tags)))
    # A chain made by continue_as_new: its neighbours (pyworkflow runs show them in turn).
    if run.continued_from_run_id:
        lines.append(("continued_from", run.continued_from_run_id))
    if run.continued_to_run_id:
        lines.append(("continued_to", run.continued_to_run_id))
    if run.schedule_id:  # started by a schedule (pyworkflow schedules list shows it)
        lines.append(("schedule", f"{run.schedule_id} (due {fmt_time(run.scheduled_time)})"))
    # A tree made by start_child_workflow: its parent and its children.
    if run.parent_run_id:
        lines.append(("parent", f"{run.parent_run_id} (nesting depth {run.nesting_depth})"))
    lines.extend(
        ("child", f"{c.run_id}  {c.workflow_name}  {c.status.value}") for c in children
    )
    lines.extend(
        ("waiting" if run.status is RunStatus.SUSPENDED else "current", waiting_text(w))
        for w in waiting
    )
    if run.status is RunStatus.COMPLETED:
        lines.append(("result", fmt_value(run.result, 400)))
    if run.error:
        lines.append(("error", run.error))
    if run.cancellation_requested:
        reason = f" ({run.cancellation_reason})" if run.cancellation_reason else ""
        lines.append(("cancel", f"requested{reason}"))
    return lines


async def cmd_runs_show(env: CliEnv) -> int:
    run_id: str = env.args.run_id
    run = await require_run(env, run_id)
    events = await env.storage.read(run_id)
    now = _now()
    waiting = describe_waiting(fold(run_id, events), now) if events else []
    children = await env.storage.get_children(run_id)
    if env.printer.as_json:
        doc = run_document(run)
        doc["children"] = [
            {"run_id": c.run_id, "workflow_name": c.workflow_name, "status": c.status.value}
            for c in children
        ]
        end = run.completed_at or now
        doc["duration_seconds"] = round((end - run.created_at).total_seconds(), 6)
        doc["event_count"] = len(events)
        doc["waiting"] = waiting
        env.printer.json(doc)
        return ExitCode.OK
    lines = _show_lines(run, events, waiting, now, children)
    width = max(len(k) for k, _ in lines) + 1
    for key, value in lines:
        env.printer.line(f"{key + ':':<{width}} {value}")
    return ExitCode.OK


# -- events ------------------------------------------------------------------------------
def _emit(env: CliEnv, events: list[Event], *, stream: bool) -> None:
    for event in events:
        if env.printer.as_json:
            env.printer.event_json_line(event)
        else:
            env.printer.line(env.printer.event_row(event))
    if stream:
        env.printer.out.flush()


async def cmd_events(env: CliEnv) -> int:
    args = env.args
    run_id: str = args.run_id
    events = await env.storage.read(run_id)
    if not events:
        await require_run(env, run_id)  # a not-found error; else a run with no events yet
    if not args.follow:
        if env.printer.as_json:
            env.printer.events_json(events)
        else:
            env.printer.line(f"{'SEQ':>5}  {'TIME':<20}  {'TYPE':<22}  DETAILS")
            _emit(env, events, stream=False)
        return ExitCode.OK
    if not env.printer.as_json:
        env.printer.line(f"{'SEQ':>5}  {'TIME':<20}  {'TYPE':<22}  DETAILS")
    _emit(env, events, stream=True)
    if not is_final(events):
        last = events[-1].sequence if events else 0
        async for batch in follow_events(env.storage, run_id, after=last, interval=args.interval):
            _emit(env, batch, stream=True)
    return ExitCode.OK
