"""Commands that change runs: ``resume``, ``cancel``, ``hooks list`` and ``hooks send``.

``cancel`` and ``hooks send`` record their event even when this process lacks the run's
code; the run then continues when a process that has it (``--app``) resumes it.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from .._api import cancel_workflow, resume, resume_hook
from .._core._records import HookRecord, HookStatus, RunStatus, WorkflowRun
from .._exceptions import InvalidTokenError, WorkflowNotRegisteredError
from .._execution._hooks import parse_token
from .._execution._registry import registry
from ._common import APP_ENV, CliEnv, CommandFailed, ExitCode
from ._output import fmt_time, fmt_value, render_table
from ._runs import require_run, run_document

__all__ = ["cmd_cancel", "cmd_hooks_list", "cmd_hooks_send", "cmd_resume"]


def _state_text(run: WorkflowRun) -> str:
    status = run.status.value
    if run.status is RunStatus.COMPLETED:
        return f"{status}, result {fmt_value(run.result, 200)}"
    if run.status is RunStatus.FAILED:
        return f"{status}: {run.error}"
    if run.status is RunStatus.CANCELLED and run.cancellation_reason:
        return f"{status} ({run.cancellation_reason})"
    if run.continued_to_run_id is not None:
        return f"{status} (the chain goes on as run {run.continued_to_run_id})"
    if run.status is RunStatus.SUSPENDED:
        why = run.suspended_reason or "?"
        until = f" until {fmt_time(run.resume_at)}" if run.resume_at else ""
        return f"{status}, waiting for {why}{until}"
    return status


def _without_code(run: WorkflowRun) -> str | None:
    """What to say of a delivery to a run whose code this process doesn't have (the event
    is recorded; the run goes on where its code runs), or None."""
    if run.status.is_finished or registry.workflow(run.workflow_name) is not None:
        return None
    return (
        f"no @workflow {run.workflow_name!r} in this process, so the run continues when "
        f"resumed by one that has its code (pyworkflow resume RUN_ID --app MODULE, or "
        f"${APP_ENV})"
    )


def _report(env: CliEnv, run: WorkflowRun, text: str, **extra: Any) -> None:
    if env.printer.as_json:
        env.printer.json({**run_document(run), **extra})
    else:
        env.printer.line(text)


async def cmd_resume(env: CliEnv) -> int:
    run_id: str = env.args.run_id
    before = await require_run(env, run_id)
    if before.status.is_finished:
        _report(env, before, f"run {run_id} is already {_state_text(before)}; nothing to resume")
        return ExitCode.OK
    try:
        await resume(run_id, storage=env.storage)
    except WorkflowNotRegisteredError as exc:
        msg = f"{exc} (pass --app MODULE[:ATTR] or set ${APP_ENV})"
        raise CommandFailed(msg, ExitCode.NOT_FOUND) from exc
    after = await require_run(env, run_id)
    not_due = after.status is RunStatus.SUSPENDED and after.last_sequence == before.last_sequence
    note = " (not due yet; nothing was written)" if not_due else ""
    _report(env, after, f"run {run_id}: {_state_text(after)}{note}", not_due=not_due)
    return ExitCode.OK


async def cmd_cancel(env: CliEnv) -> int:
    run_id: str = env.args.run_id
    run = await require_run(env, run_id)
    if run.status.is_finished:
        msg = f"run {run_id} is already {run.status.value}; there is nothing to cancel"
        raise CommandFailed(msg, ExitCode.CONFLICT)
    requested = await cancel_workflow(run_id, reason=env.args.reason, storage=env.storage)
    after = await require_run(env, run_id)
    pending = _without_code(after)
    if not requested:
        msg = f"run {run_id} finished ({after.status.value}) before it could be cancelled"
        raise CommandFailed(msg, ExitCode.CONFLICT)
    if pending is not None:
        text = f"cancellation of run {run_id} recorded; {pending}"
    elif after.status.is_finished:
        text = f"run {run_id}: {_state_text(after)}"
    elif after.status is RunStatus.RUNNING:
        text = f"cancellation of run {run_id} requested; it stops at its next checkpoint"
    else:
        text = f"cancellation of run {run_id} recorded; run is {_state_text(after)}"
    _report(env, after, text, pending=pending)
    return ExitCode.OK


async def cmd_hooks_list(env: CliEnv) -> int:
    run_id: str | None = env.args.run
    if run_id is not None:
        await require_run(env, run_id)
    hooks = await env.storage.list_hooks(run_id)
    if env.args.status:
        hooks = [h for h in hooks if h.status is HookStatus(env.args.status)]
    if env.printer.as_json:
        env.printer.json([msgspec.to_builtins(h) for h in hooks])
        return ExitCode.OK
    if not hooks:
        env.printer.line("no hooks" + (f" for run {run_id}" if run_id else ""))
        return ExitCode.OK
    env.printer.line(
        render_table(("HOOK", "STATUS", "CREATED", "EXPIRES", "TOKEN"), map(_hook_row, hooks))
    )
    return ExitCode.OK


def _hook_row(h: HookRecord) -> tuple[str, ...]:
    return (h.hook_name, h.status.value, fmt_time(h.created_at), fmt_time(h.expires_at), h.token)


def _payload(text: str) -> Any:
    raw = sys.stdin.read() if text == "-" else text
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        msg = (
            f"--json {shown!r} is not valid JSON ({exc}); quote it, e.g. --json '{{\"ok\": true}}'"
        )
        raise CommandFailed(msg, ExitCode.USAGE) from None


async def cmd_hooks_send(env: CliEnv) -> int:
    token: str = env.args.token
    try:
        run_id, _ = parse_token(token)
    except InvalidTokenError as exc:
        raise CommandFailed(str(exc), ExitCode.USAGE) from None
    payload = _payload(env.args.payload)
    run = await resume_hook(token, payload, storage=env.storage)
    pending = _without_code(run)
    if pending is not None:
        text = f"payload recorded for run {run_id}; {pending}"
    else:
        text = f"payload delivered; run {run_id}: {_state_text(run)}"
    _report(env, run, text, pending=pending)
    return ExitCode.OK
