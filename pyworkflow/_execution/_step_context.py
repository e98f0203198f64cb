"""Step context: a typed, frozen value that workflow code sets and every step reads.

``await set_step_context(ctx)`` in workflow code records ``step_context_set`` (the context's
JSON) as a checkpoint of its own, so a replay (after a crash, a suspension) reaches the same
calls in the same order and sets the same values. The current value lives on the execution
(``RunContext.step_context``), shared by every branch of the workflow; a step takes a
read-only snapshot of it when its body starts (``enter_step``), so steps running concurrently
see it too, and setting it from a step is refused.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Self

import msgspec

from .._core._events import StepContextSet
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import ConfigurationError, SerializationError
from ._context import RunContext, TransientContext, current_context, step_view
from ._drafts import Derive, Draft
from ._registry import registry

__all__ = ["StepContext", "get_step_context", "has_step_context", "set_step_context"]


class StepContext(msgspec.Struct, frozen=True, kw_only=True):
    """Base class of a workflow's step context: subclass it with typed fields and defaults.

    ``class OrderContext(StepContext): order_id: str = ""; amount: float = 0.0``, then
    ``@workflow(context_class=OrderContext)``. Instances are frozen and checked against
    the field types when made (``ConfigurationError`` names the field and the value).
    """

    def __post_init__(self) -> None:
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            try:
                msgspec.convert(value, field.type, strict=True)
            except msgspec.ValidationError as exc:
                msg = (
                    f"{type(self).__name__}.{field.name} = {value!r}: {exc}; pass a value of "
                    f"the field's type ({field.type!r})"
                )
                raise ConfigurationError(msg) from None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (what the log records)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def with_updates(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (the fields are checked again).

        Raises:
            ConfigurationError: a name that is not a field, or a value of the wrong type.
        """
        names = {f.name for f in msgspec.structs.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            msg = (
                f"{type(self).__name__}.with_updates(): no field {', '.join(unknown)}; "
                f"its fields are {', '.join(sorted(names))}"
            )
            raise ConfigurationError(msg)
        return msgspec.structs.replace(self, **changes)


def set_step_context(context: StepContext) -> Coroutine[Any, Any, None]:
    """Make ``context`` the step context of this run, for the workflow and its steps.

    Await it in workflow code: in a durable workflow it is recorded in the log
    (``step_context_set``) and restored on replay. Steps see it read-only.

    Raises:
        ConfigurationError: called in a step or outside a workflow, ``context`` is not an
            instance of the workflow's ``context_class``, or no ``context_class`` is set.
        SerializationError: the context can't be stored as JSON (nothing is written).
    """
    run = current_context()
    if run is None:
        where = "inside a step" if step_view() is not None else "outside any workflow"
        msg = (
            f"set_step_context() was called {where}: steps see the step context read-only; "
            "return what changed from the step and call set_step_context() in the workflow"
        )
        raise ConfigurationError(msg)
    if isinstance(run, TransientContext):
        _check(context, None)
        run.step_context = context
        return _noop()
    wf = registry.workflow(run.state.workflow_name)
    _check(context, wf.context_class if wf is not None else None, run.state.workflow_name)
    try:
        raw = msgspec.Raw(msgspec.json.encode(context))
    except (TypeError, msgspec.EncodeError) as exc:
        msg = f"step context {context!r} can't be stored as JSON: {exc}"
        raise SerializationError(msg) from None
    index, recorded = run.next_checkpoint(Kind.CONTEXT, Kind.CONTEXT.value)
    return _record(run, index, recorded, context, raw)


def _check(context: object, cls: type[StepContext] | None, workflow: str | None = None) -> None:
    if not isinstance(context, StepContext):
        msg = (
            f"set_step_context({context!r}): pass an instance of a StepContext subclass "
            "(class MyContext(StepContext): ...)"
        )
        raise ConfigurationError(msg)
    if workflow is not None and cls is None:
        msg = (
            f"workflow {workflow!r} has no context_class: declare "
            f"@workflow(context_class={type(context).__name__}) to record its step context"
        )
        raise ConfigurationError(msg)
    if cls is not None and not isinstance(context, cls):
        msg = (
            f"set_step_context({context!r}): workflow {workflow!r} declares "
            f"context_class={cls.__name__}; pass an instance of it"
        )
        raise ConfigurationError(msg)


async def _noop() -> None:
    return None


async def _record(
    run: RunContext, index: int, recorded: Checkpoint | None, context: StepContext, raw: Any
) -> None:
    if recorded is None:
        await run.ask(_context_set(index, raw))
    run.step_context = context


def _context_set(index: int, raw: msgspec.Raw) -> Derive:
    def derive(state: RunState) -> Sequence[Draft]:
        if index in state.checkpoints:
            return ()
        return (Draft(StepContextSet, {"checkpoint": index, "context": raw}),)

    return derive


def _current() -> StepContext | None:
    run = current_context()
    if run is not None:
        value: StepContext | None = run.step_context
        return value
    view = step_view()
    return view.context if view is not None else None


def get_step_context() -> StepContext:
    """The step context set in this run (in workflow code, or a step's read-only copy).

    Raises:
        ConfigurationError: none was set yet (``has_step_context()`` tells).
    """
    context = _current()
    if context is None:
        msg = (
            "no step context is set: call `await set_step_context(...)` in the workflow "
            "first (has_step_context() tells whether one is set)"
        )
        raise ConfigurationError(msg)
    return context


def has_step_context() -> bool:
    """Whether a step context is set in this run (in workflow code or in a step)."""
    return _current() is not None
