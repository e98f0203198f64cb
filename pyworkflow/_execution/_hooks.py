"""Hooks: a workflow waits for a payload from outside, delivered with a secret token.

The token is ``"{run_id}:{hook_id}"``; the hook id holds 128 random bits, so a token cannot
be guessed from the run id.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

import msgspec

from .._core._codec import decode_value, encode_value
from .._core._durations import Duration, parse_duration
from .._core._events import HookCreated, HookExpired
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import ConfigurationError, HookExpiredError, HookPayloadError, InvalidTokenError
from ._context import RunContext, current_context, is_shielded
from ._drafts import Derive, Draft
from ._registry import registry

__all__ = ["TypedHook", "define_hook", "hook", "parse_token", "validate_payload"]

T = TypeVar("T")
OnCreated = Callable[[str], Any]

_TOKEN = re.compile(r"(run_[0-9a-f]{16}):(hook_[0-9a-f]{32})")


def parse_token(token: object) -> tuple[str, str]:
    """Split a token into ``(run_id, hook_id)`` or raise :class:`InvalidTokenError`."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        shown = token if not isinstance(token, str) or len(token) < 100 else token[:97] + "..."
        msg = (
            f"malformed hook token {shown!r}: expected 'run_<16 hex>:hook_<32 hex>' as "
            "passed to the hook's on_created callback"
        )
        raise InvalidTokenError(msg)
    return match.group(1), match.group(2)


def validate_payload(tp: Any, payload: Any, *, hook_name: str) -> msgspec.Raw:
    """Check ``payload`` against ``tp`` and encode it; raise HookPayloadError if it fails."""
    if tp is not Any and not isinstance(payload, tp if isinstance(tp, type) else object):
        validate = getattr(tp, "model_validate", None)
        try:
            payload = validate(payload) if callable(validate) else msgspec.convert(payload, tp)
        except Exception as exc:  # msgspec.ValidationError, pydantic.ValidationError
            msg = f"payload {payload!r} for hook {hook_name!r} is not a valid {_name(tp)}: {exc}"
            raise HookPayloadError(msg) from exc
    return encode_value(payload, what=f"the payload of hook {hook_name!r}", path="payload")


def _name(tp: Any) -> str:
    return getattr(tp, "__qualname__", repr(tp))


def hook(
    name: str,
    *,
    timeout: Duration | None = None,
    on_created: OnCreated | None = None,
    payload_type: Any = Any,
) -> Coroutine[Any, Any, Any]:
    """Wait for an external payload; only inside a durable workflow.

    Records ``hook_created``, calls ``on_created(token)`` (sync or async), and suspends the
    run until ``resume_hook(token, payload)``. Returns the payload. ``on_created`` runs once,
    or again if the process died before the run suspended (at-least-once, like a step).

    Args:
        name: the hook's name, part of its checkpoint identity.
        timeout: after this long without a payload, ``hook_expired`` is recorded and
            :class:`HookExpiredError` is raised inside the workflow.
        on_created: receives the token to hand to whoever will send the payload.
        payload_type: decode (and validate) the payload into this type.
    """
    if not isinstance(name, str) or not name:
        msg = f"hook name {name!r} must be a non-empty string"
        raise ConfigurationError(msg)
    seconds = None if timeout is None else parse_duration(timeout, what="hook timeout")
    ctx = current_context()
    if not isinstance(ctx, RunContext):
        msg = f"hook({name!r}) can only be awaited inside a durable workflow (durable=True)"
        raise ConfigurationError(msg)
    index, recorded = ctx.next_checkpoint(Kind.HOOK, name)
    return _durable_hook(ctx, index, recorded, name, seconds, on_created, payload_type)


async def _durable_hook(
    ctx: RunContext,
    index: int,
    cp: Checkpoint | None,
    name: str,
    timeout_s: float | None,
    on_created: OnCreated | None,
    payload_type: Any,
) -> Any:
    if cp is None:
        ctx.check_cancelled()
        # secrets.token_hex(16) is os.urandom(16).hex(); importing secrets costs import
        # pyworkflow ~3 ms (hmac, OpenSSL's hashlib)
        hook_id = f"hook_{os.urandom(16).hex()}"
        expires = None if timeout_s is None else ctx.now() + timedelta(seconds=timeout_s)
        fields = {
            "hook_id": hook_id,
            "hook_name": name,
            "checkpoint": index,
            "token": f"{ctx.run_id}:{hook_id}",
            "expires_at": expires,
        }
        await ctx.ask(ctx.opening(index, HookCreated, fields, is_shielded()))
        ctx.log.info("hook_created", hook=name, hook_id=hook_id)
        await _announce(ctx.state.checkpoints[index], on_created)
    elif not (cp.resolved or cp.announced):
        # The execution that created the hook died before its run suspended, so its
        # on_created may never have run: call it again (at-least-once, like a step).
        await _announce(cp, on_created)
    while True:
        cp = ctx.state.checkpoints[index]
        if cp.resolved:
            if cp.error is not None:
                raise HookExpiredError(f"hook {name!r} of run {ctx.run_id!r} timed out")
            assert cp.result is not None
            return decode_value(cp.result, payload_type, what=f"payload of hook {name!r}")
        ctx.check_cancelled()
        if cp.due is not None and ctx.now() >= cp.due:
            # Derived when written: a payload that arrived first wins, and is returned.
            await ctx.ask(_expired(index, cp.hook_id))
            continue
        await ctx.suspend(index)


def _expired(index: int, hook_id: str | None) -> Derive:
    def derive(state: RunState) -> Sequence[Draft]:
        if state.checkpoints[index].resolved:
            return ()
        return (Draft(HookExpired, {"hook_id": hook_id, "checkpoint": index}),)

    return derive


async def _announce(cp: Checkpoint, on_created: OnCreated | None) -> None:
    if on_created is not None and cp.token is not None:
        returned = on_created(cp.token)
        if inspect.isawaitable(returned):
            await returned


class TypedHook(Generic[T]):
    """A hook whose payload is validated as ``payload_type`` before anything is recorded.

    Await ``typed_hook(timeout=..., on_created=...)`` inside a workflow; deliver with
    ``resume_hook(token, payload)`` (validated the same way).
    """

    def __init__(self, name: str, payload_type: type[T]) -> None:
        self.name = name
        self.payload_type = payload_type

    def __call__(
        self, *, timeout: Duration | None = None, on_created: OnCreated | None = None
    ) -> Coroutine[Any, Any, T]:
        return hook(
            self.name, timeout=timeout, on_created=on_created, payload_type=self.payload_type
        )

    def __repr__(self) -> str:
        return f"<hook {self.name!r} payload={_name(self.payload_type)}>"


def define_hook(name: str, payload_type: type[T]) -> TypedHook[T]:
    """Define a typed hook: msgspec Structs, dataclasses, pydantic models, or any type
    msgspec can validate."""
    if not isinstance(name, str) or not name:
        msg = f"define_hook name {name!r} must be a non-empty string"
        raise ConfigurationError(msg)
    registry.add_hook_type(name, payload_type)
    return TypedHook(name, payload_type)
