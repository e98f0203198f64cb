"""The actions: cancel a run, deliver a hook payload, resume a run (POST only).

Each goes through the command line's own operation (``_cli._control``), so the dashboard
and ``pyworkflow cancel`` / ``hooks send`` / ``resume`` check and say the same things. A
POST is refused before anything is read from storage when the dashboard is read-only
(403), its body is too large (413), or its CSRF token does not match its cookie (403).
A script (``Accept: application/json``) gets ``{"ok", "message", "status"}``; a browser
without JavaScript is sent back to the run page, with the error shown in the form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .._cli._common import CommandFailed, ExitCode
from .._cli._control import Outcome, cancel_run, parse_payload, resume_run, send_hook
from .._exceptions import (
    HookAlreadyReceivedError,
    HookExpiredError,
    HookPayloadError,
    InvalidTokenError,
    RunLockedError,
    WorkflowError,
)
from ._context import SECURITY_HEADERS, Context
from ._pages import run_page
from ._security import CSRF_FIELD, csrf_ok

__all__ = ["cancel", "deliver", "resume"]

_STATUS = {ExitCode.USAGE: 400, ExitCode.NOT_FOUND: 404, ExitCode.CONFLICT: 409}
_ERRORS: tuple[tuple[type[WorkflowError], int], ...] = (
    (HookPayloadError, 400),
    (InvalidTokenError, 404),
    (HookAlreadyReceivedError, 409),
    (HookExpiredError, 409),
    (RunLockedError, 409),
)

Operation = Callable[[dict[str, str]], Awaitable[Outcome]]


class Refused(Exception):
    """A POST refused before it did anything: an HTTP status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _form(ctx: Context, request: Request) -> dict[str, str]:
    """The POST's form fields, after the read-only, size and CSRF checks."""
    if ctx.options.read_only:
        raise Refused(403, "this dashboard is read-only (--read-only)")
    limit = ctx.options.max_payload
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > limit:
        raise Refused(413, f"the form is larger than the dashboard accepts ({limit} bytes)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"the form is larger than the dashboard accepts ({limit} bytes)")
    try:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Refused(400, "the form is not UTF-8 text") from None
    if not csrf_ok(ctx.options.secret, request, fields.get(CSRF_FIELD)):
        raise Refused(403, "the form's CSRF token is missing or stale: reload the page")
    return fields


async def _act(ctx: Context, request: Request, operation: Operation) -> Response:
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        outcome = await operation(await _form(ctx, request))
    except Refused as exc:
        return await _failed(ctx, request, exc.status, str(exc), wants_json=wants_json)
    except CommandFailed as exc:
        status = _STATUS.get(exc.code, 500)
        return await _failed(ctx, request, status, str(exc), wants_json=wants_json)
    except WorkflowError as exc:
        status = next((code for cls, code in _ERRORS if isinstance(exc, cls)), 500)
        return await _failed(ctx, request, status, str(exc), wants_json=wants_json)
    if wants_json:
        document = {"ok": True, "message": outcome.text, "status": outcome.run.status.value}
        return JSONResponse(document, headers=SECURITY_HEADERS)
    return RedirectResponse(f"/runs/{outcome.run.run_id}", status_code=303)


async def _failed(
    ctx: Context, request: Request, status: int, message: str, *, wants_json: bool
) -> Response:
    if wants_json or "run_id" not in request.path_params:
        return JSONResponse({"ok": False, "error": message}, status, headers=SECURITY_HEADERS)
    response = await run_page(ctx, request, form_error=message, status=status)
    return response if response.status_code != 404 else JSONResponse(
        {"ok": False, "error": message}, status, headers=SECURITY_HEADERS
    )


async def cancel(ctx: Context, request: Request) -> Response:
    run_id: str = request.path_params["run_id"]
    storage, desc = ctx.options.storage, ctx.options.storage_desc

    async def operation(form: dict[str, str]) -> Outcome:
        reason = form.get("reason", "").strip() or None
        return await cancel_run(storage, desc, run_id, reason)

    return await _act(ctx, request, operation)


async def resume(ctx: Context, request: Request) -> Response:
    run_id: str = request.path_params["run_id"]

    async def operation(form: dict[str, str]) -> Outcome:
        return await resume_run(ctx.options.storage, ctx.options.storage_desc, run_id)

    return await _act(ctx, request, operation)


async def deliver(ctx: Context, request: Request) -> Response:
    run_id: str = request.path_params["run_id"]

    async def operation(form: dict[str, str]) -> Outcome:
        token = form.get("token", "")
        if not token.startswith(f"{run_id}:"):
            msg = f"hook token {token!r} is not one of run {run_id}'s"
            raise CommandFailed(msg, ExitCode.USAGE)
        payload = parse_payload(form.get("payload", "null") or "null", option="payload")
        return await send_hook(ctx.options.storage, token, payload)

    return await _act(ctx, request, operation)
