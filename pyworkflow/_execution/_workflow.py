"""``@workflow``: marks an async function as a workflow and registers it by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from .._config import settings
from .._core._codec import Codec
from .._exceptions import ConfigurationError
from ._context import TransientContext, running
from ._registry import registry
from ._step_context import StepContext

__all__ = ["Workflow", "workflow"]

P = ParamSpec("P")
R = TypeVar("R")


class Workflow(Generic[P, R]):
    """A workflow definition. Start it with ``start(wf, ...)``.

    Awaiting ``wf(...)`` directly runs it inline with no log (like ``durable=False``).
    """

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]],
        *,
        name: str | None,
        durable: bool | None,
        tags: Sequence[str] | None,
        context_class: type[StepContext] | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            msg = f"@workflow needs an async def function, got {fn!r}"
            raise ConfigurationError(msg)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            msg = f"@workflow(name={name!r}): a workflow name must be a non-empty string"
            raise ConfigurationError(msg)
        if durable is not None and not isinstance(durable, bool):
            msg = f"@workflow(durable={durable!r}): pass True, False or leave it out"
            raise ConfigurationError(msg)
        if isinstance(tags, str) or (
            tags is not None and not all(isinstance(t, str) for t in tags)
        ):
            msg = f"@workflow(tags={tags!r}): tags must be a list of strings"
            raise ConfigurationError(msg)
        if context_class is not None and not (
            isinstance(context_class, type) and issubclass(context_class, StepContext)
        ):
            msg = (
                f"@workflow(context_class={context_class!r}): pass a subclass of "
                "pyworkflow.StepContext"
            )
            raise ConfigurationError(msg)
        self.context_class = context_class
        self.fn = fn
        self.name: str = name or fn.__name__
        self.durable = durable
        self.tags: tuple[str, ...] = tuple(tags or ())
        self.codec = Codec(fn, f"workflow {self.name!r}")
        functools.update_wrapper(self, fn)

    def is_durable(self) -> bool:
        """Durability from the decorator, else from ``configure(default_durable=...)``."""
        return settings().default_durable if self.durable is None else self.durable

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self._inline(args, kwargs)

    async def _inline(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        current = settings()
        with running(TransientContext(current.clock, current.log)):
            return await self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<workflow {self.name!r}>"


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    durable: bool | None = None,
    tags: Sequence[str] | None = None,
    context_class: type[StepContext] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]: ...
def workflow(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    durable: bool | None = None,
    tags: Sequence[str] | None = None,
    context_class: type[StepContext] | None = None,
) -> Workflow[P, R] | Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]:
    """Mark an async function as a workflow.

    Args:
        name: the name stored in the log (default: the function's ``__name__``); runs are
            resumed by it, so keep it stable.
        durable: ``True`` records every step in the event log and survives restarts;
            ``False`` runs straight through with no log; default from ``configure``.
        tags: free-form labels stored on the run.
        context_class: the :class:`StepContext` subclass that ``set_step_context``
            records for this workflow's runs (and that replay decodes).
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Workflow[P, R]:
        wf = Workflow(func, name=name, durable=durable, tags=tags, context_class=context_class)
        registry.add_workflow(wf)
        return wf

    if fn is not None:
        return decorate(fn)
    return decorate
