"""The module-level API of the seed: start, resume, cancel, inspect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _execution
from ._config import Host, Settings, default_storage, engine_for, host_for, state_cache
from ._core._records import RunPage, RunStatus, WorkflowRun
from ._exceptions import RunNotFoundError

if TYPE_CHECKING:
    from ._core._events import Event
    from ._execution._engine import Engine
    from ._execution._workflow import Workflow
    from .storage import StorageBackend

__all__ = [
    "cancel_workflow",
    "get_workflow_chain",
    "get_workflow_events",
    "get_workflow_run",
    "list_runs",
    "resume",
    "resume_hook",
    "start",
]


def _engine(storage: StorageBackend | None) -> Engine:
    """An engine on ``storage``; the first call imports the engine (a lazy attribute)."""
    return engine_for(storage if storage is not None else default_storage(), _make_engine)


def _make_engine(storage: StorageBackend, settings: Settings) -> Engine:
    return _execution.Engine(storage, settings, state_cache())


def _store(storage: StorageBackend | None) -> StorageBackend:
    return storage if storage is not None else default_storage()


def _host(storage: StorageBackend | None) -> Host | None:
    """The supervisor that owns this storage's runs in this process, if one is open: calls
    then go to the run's actor instead of executing beside it."""
    return host_for(_store(storage))


async def start(
    workflow: Workflow[..., Any],
    /,
    *args: Any,
    idempotency_key: str | None = None,
    storage: StorageBackend | None = None,
    **kwargs: Any,
) -> str:
    """Start a run of ``workflow`` with ``*args``/``**kwargs`` and return its run id.

    A durable run executes inline until it completes, suspends (sleep, hook, retry delay)
    or fails; its failure is recorded on the run (``get_workflow_run(run_id).error``), not
    raised. A run that calls ``continue_as_new`` is followed: its successors execute inline
    too, until the last one rests; the id returned is still the first run's (the chain's
    head; ``get_workflow_chain`` lists the others). A transient (``durable=False``)
    workflow runs straight through with no log.

    Args:
        idempotency_key: a second ``start`` with the same key returns the first run's id
            without executing anything (also while the first is still running).
        storage: use this backend instead of the configured one.

    Raises:
        ConfigurationError: ``workflow`` is not decorated with ``@workflow``.
        TypeError: the arguments don't fit the workflow's signature.
        SerializationError: an argument can't be stored (nothing is written).
    """
    host = _host(storage)
    if host is not None:
        return await host.start_and_rest(workflow, args, kwargs, idempotency_key)
    return await _engine(storage).start(workflow, args, kwargs, idempotency_key=idempotency_key)


async def resume(run_id: str, *, storage: StorageBackend | None = None) -> Any:
    """Continue a suspended run (or recover one whose executor died).

    Returns the workflow's result if it completes during this call, else None. A run whose
    timer is not yet due stays suspended (a ``resume_not_due`` warning is logged); a
    finished run is left as it is. A run that ended ``continued_as_new`` is followed to its
    successors (each resumed in turn; a crash between a run's end and its successor's
    start is repaired): the result is then the chain's last run's.

    Raises:
        RunNotFoundError: no such run.
        RunLockedError: another task or process is executing it right now.
        NonDeterminismError: the code no longer matches the log (nothing is written).
    """
    host = _host(storage)
    if host is not None:
        return await host.resume_and_rest(run_id)
    return await _engine(storage).resume(run_id)


async def cancel_workflow(
    run_id: str, *, reason: str | None = None, storage: StorageBackend | None = None
) -> bool:
    """Request cancellation; return False if the run had already finished.

    Records ``cancellation_requested``; ``CancellationError`` is raised inside the workflow
    at its next checkpoint (a suspended run is woken at once to run its cleanup).

    Raises:
        RunNotFoundError: no such run.
    """
    host = _host(storage)
    if host is not None:
        return await host.cancel_and_rest(run_id, reason)
    return await _engine(storage).cancel(run_id, reason)


async def resume_hook(
    token: str, payload: Any = None, *, storage: StorageBackend | None = None
) -> WorkflowRun:
    """Deliver ``payload`` to the hook behind ``token`` and continue its run.

    Returns the run's record after it ran as far as it could.

    Raises:
        InvalidTokenError: the token is malformed or unknown.
        HookAlreadyReceivedError / HookExpiredError: the hook can no longer be resumed.
        HookPayloadError: a typed hook's payload failed validation (nothing is written).
    """
    host = _host(storage)
    if host is not None:
        return await host.resume_hook_and_rest(token, payload)
    return await _engine(storage).resume_hook(token, payload)


async def get_workflow_run(
    run_id: str, *, storage: StorageBackend | None = None
) -> WorkflowRun | None:
    """The run's record (status, result, error, timings), or None for an unknown id."""
    return await _store(storage).get_run(run_id)


async def get_workflow_events(run_id: str, *, storage: StorageBackend | None = None) -> list[Event]:
    """The run's events in order (empty for an unknown id)."""
    return await _store(storage).read(run_id)


async def list_runs(
    *,
    status: RunStatus | str | None = None,
    workflow_name: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    storage: StorageBackend | None = None,
) -> RunPage:
    """Runs, newest first, optionally filtered; iterate the page or read ``.runs``.

    Pass the page's ``next_cursor`` as ``cursor`` to get the next page.
    """
    status = RunStatus(status) if status is not None else None
    return await _store(storage).list_runs(
        status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
    )


async def get_workflow_chain(
    run_id: str, *, storage: StorageBackend | None = None
) -> list[WorkflowRun]:
    """The records of the runs chained by ``continue_as_new`` with ``run_id``, in order.

    From any member: the runs it continued from (``continued_from_run_id``), itself, and
    the runs it continued as (``continued_to_run_id``). A run that never continued is a
    chain of one. One read per member.

    Raises:
        RunNotFoundError: no such run.
    """
    store = _store(storage)
    run = await store.get_run(run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    seen = {run.run_id}
    before: list[WorkflowRun] = []
    link = run.continued_from_run_id
    while link is not None and link not in seen:
        prev = await store.get_run(link)
        if prev is None:
            break
        seen.add(link)
        before.append(prev)
        link = prev.continued_from_run_id
    after: list[WorkflowRun] = []
    link = run.continued_to_run_id
    while link is not None and link not in seen:
        nxt = await store.get_run(link)
        if nxt is None:  # the successor's start is not written yet (see continue_as_new)
            break
        seen.add(link)
        after.append(nxt)
        link = nxt.continued_to_run_id
    return [*reversed(before), run, *after]
