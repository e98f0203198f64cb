"""Commands that change runs: ``resume``, ``cancel``, ``hooks list`` and ``hooks send``.

``cancel`` and ``hooks send`` record their event even when this process lacks the run's
code; the run then continues when a process that has it (``--app``) resumes it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._api import cancel_workflow, resume, resume_hook
from .._core._records import HookRecord, HookStatus, RunStatus, WorkflowRun
from .._exceptions import InvalidTokenError, WorkflowNotRegisteredError
from .._execution._hooks import parse_token
from .._execution._registry import registry
from ..storage import StorageBackend
from ._common import APP_ENV, CliEnv, CommandFailed, ExitCode
from ._output import fmt_time, fmt_value, render_table
from ._runs import find_run, require_run, run_document

__all__ = [
    "Outcome",
    "cancel_run",
    "cmd_cancel",
    "cmd_hooks_list",
    "cmd_hooks_send",
    "cmd_resume",
    "parse_payload",
    "resume_run",
    "send_hook",
    "state_text",
]


def state_text(run: WorkflowRun) -> str:
    """A run's status in a few words: its result, error, reason or what it waits for."""
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation did: the run's record after it, a sentence, and extra JSON."""

    run: WorkflowRun
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


def _report(env: CliEnv, outcome: Outcome) -> None:
    if env.printer.as_json:
        env.printer.json({**run_document(outcome.run), **outcome.extra})
    else:
        env.printer.line(outcome.text)


async def resume_run(storage: StorageBackend, desc: str, run_id: str) -> Outcome:
    """Resume a run (the ``resume`` command and the dashboard's button).

    Raises:
        CommandFailed: no such run, or its workflow is not in this process.
    """
    before = await find_run(storage, desc, run_id)
    if before.status.is_finished:
        text = f"run {run_id} is already {state_text(before)}; nothing to resume"
        return Outcome(before, text)
    try:
        await resume(run_id, storage=storage)
    except WorkflowNotRegisteredError as exc:
        msg = f"{exc} (pass --app MODULE[:ATTR] or set ${APP_ENV})"
        raise CommandFailed(msg, ExitCode.NOT_FOUND) from exc
    after = await find_run(storage, desc, run_id)
    not_due = after.status is RunStatus.SUSPENDED and after.last_sequence == before.last_sequence
    note = " (not due yet; nothing was written)" if not_due else ""
    return Outcome(after, f"run {run_id}: {state_text(after)}{note}", {"not_due": not_due})


async def cmd_resume(env: CliEnv) -> int:
    _report(env, await resume_run(env.storage, env.storage_desc, env.args.run_id))
    return ExitCode.OK


async def cancel_run(
    storage: StorageBackend, desc: str, run_id: str, reason: str | None
) -> Outcome:
    """Request a run's cancellation with ``reason`` (the ``cancel`` command and the
    dashboard's form).

    Raises:
        CommandFailed: no such run, or it already finished.
    """
    run = await find_run(storage, desc, run_id)
    if run.status.is_finished:
        msg = f"run {run_id} is already {run.status.value}; there is nothing to cancel"
        raise CommandFailed(msg, ExitCode.CONFLICT)
    requested = await cancel_workflow(run_id, reason=reason, storage=storage)
    after = await find_run(storage, desc, run_id)
    pending = _without_code(after)
    if not requested:
        msg = f"run {run_id} finished ({after.status.value}) before it could be cancelled"
        raise CommandFailed(msg, ExitCode.CONFLICT)
    if pending is not None:
        text = f"cancellation of run {run_id} recorded; {pending}"
    elif after.status.is_finished:
        text = f"run {run_id}: {state_text(after)}"
    elif after.status is RunStatus.RUNNING:
        text = f"cancellation of run {run_id} requested; it stops at its next checkpoint"
    else:
        text = f"cancellation of run {run_id} recorded; run is {state_text(after)}"
    return Outcome(after, text, {"pending": pending})


async def cmd_cancel(env: CliEnv) -> int:
    args = env.args
    _report(env, await cancel_run(env.storage, env.storage_desc, args.run_id, args.reason))
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


def parse_payload(raw: str, *, option: str = "--json") -> Any:
    """A hook payload from its JSON text.

    Raises:
        CommandFailed: it is not JSON (usage), quoting the start of it.
    """
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        example = f"""{option} '{{"ok": true}}'"""
        msg = f"{option} {shown!r} is not valid JSON ({exc}); quote it, e.g. {example}"
        raise CommandFailed(msg, ExitCode.USAGE) from None


async def send_hook(storage: StorageBackend, token: str, payload: Any) -> Outcome:
    """Deliver ``payload`` to the hook behind ``token`` (``hooks send`` and the dashboard).

    Raises:
        CommandFailed: a malformed token (usage).
        InvalidTokenError, HookAlreadyReceivedError, HookExpiredError, HookPayloadError:
            as ``resume_hook`` raises them.
    """
    try:
        run_id, _ = parse_token(token)
    except InvalidTokenError as exc:
        raise CommandFailed(str(exc), ExitCode.USAGE) from None
    run = await resume_hook(token, payload, storage=storage)
    pending = _without_code(run)
    if pending is not None:
        text = f"payload recorded for run {run_id}; {pending}"
    else:
        text = f"payload delivered; run {run_id}: {state_text(run)}"
    return Outcome(run, text, {"pending": pending})


async def cmd_hooks_send(env: CliEnv) -> int:
    text: str = env.args.payload
    payload = parse_payload(sys.stdin.read() if text == "-" else text)
    _report(env, await send_hook(env.storage, env.args.token, payload))
    return ExitCode.OK
