"""Clients: send commands to the workers that own the runs, and read what runs did."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import anyio

from .._config import settings
from .._core._replay import fold
from .._exceptions import ConfigurationError, RunNotFoundError, TransientStorageError
from .._execution._engine import Engine, encode_start, new_run_id
from .._execution._workflow import Workflow
from ..storage._kafka._backend import KafkaStorageBackend
from ._bus import CommandBus
from ._commands import CancelCommand, HookCommand, StartCommand, raw_json
from ._supervisor import outcome_of

__all__ = ["Client"]

_POLL_FIRST, _POLL_MAX = 0.02, 0.5


class Client:
    """Starts runs and delivers hooks and cancellations as command records; never executes.

    ``async with Client(storage=KafkaStorageBackend(...)) as client:``. The storage is
    started if it isn't (and then closed on the way out). Each call returns once its command
    is durable in ``{prefix}.commands``; the worker that owns the run executes it.
    """

    def __init__(self, storage: KafkaStorageBackend) -> None:
        if not isinstance(storage, KafkaStorageBackend):
            msg = f"Client(storage={storage!r}): clients talk to workers through Kafka"
            raise ConfigurationError(msg)
        self.storage = storage
        self._engine = Engine(storage, settings())
        self._bus = CommandBus(storage.settings)
        self._started_storage = False
        self._open = False

    async def __aenter__(self) -> Self:
        self._started_storage = not self.storage.started
        await self.storage.start()
        await self._bus.start()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._bus.aclose()
        if self._started_storage:
            await self.storage.aclose()

    async def start(
        self,
        workflow: Workflow[..., Any],
        /,
        *args: Any,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Send a ``start`` command; return the run id once it is durable.

        With ``idempotency_key``, the first run that claimed the key is the one returned
        (and started, if its own start never arrived).

        Raises:
            ConfigurationError: the key belongs to a run of another workflow (seen once
                that run has started; a start racing it is refused by the worker, which
                logs ``command_refused``).
        """
        self._check_open()
        raw_args, raw_kwargs = encode_start(workflow, args, kwargs, idempotency_key)
        run_id = new_run_id()
        if idempotency_key is not None:
            holder = await self.storage.claim_idempotency_key(idempotency_key, run_id)
            if holder != run_id:  # raises if the holder runs another workflow (if started)
                await self._engine.started_as(holder, workflow.name, idempotency_key)
            run_id = holder
        await self._bus.send(
            StartCommand(
                run_id=run_id,
                workflow=workflow.name,
                args=raw_args,
                kwargs=raw_kwargs,
                idempotency_key=idempotency_key,
            )
        )
        return run_id

    async def result(self, run_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The run's value once it finished (as ``Supervisor.result``: a run that continued
        as new is followed to the chain's last run); reads the storage."""
        delay = _POLL_FIRST
        with anyio.fail_after(timeout):
            while True:
                try:
                    run = await self.storage.wait_finished(run_id)  # woken by the fold
                    if run.continued_to_run_id is not None:
                        run_id = run.continued_to_run_id
                        continue
                    return await outcome_of(self.storage, run)
                except TransientStorageError:
                    pass  # the broker is away for now: look again (within ``timeout``)
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)

    async def resume_hook(self, token: str, payload: Any = None) -> Any:
        """Send the payload for the hook behind ``token``; return the run's record.

        The token, the payload's type (when the hook's type is known here) and the hook's
        state are checked first, with the same errors as ``pyworkflow.resume_hook``.
        """
        self._check_open()
        run_id, derive = await self._engine.hook_request(token, payload)
        events = await self.storage.read(run_id)
        derive(fold(run_id, events))  # raises now what the owner would refuse
        await self._bus.send(
            HookCommand(run_id=run_id, token=token, payload=raw_json(payload, "hook payload"))
        )
        return await self.storage.get_run(run_id)

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        """Send a ``cancel`` command; False if the run had already finished."""
        self._check_open()
        if reason is not None and not isinstance(reason, str):
            msg = f"cancel reason {reason!r} must be a string or None"
            raise ConfigurationError(msg)
        run = await self.storage.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        if run.status.is_finished:
            return False
        await self._bus.send(CancelCommand(run_id=run_id, reason=reason))
        return True

    def _check_open(self) -> None:
        if not self._open:
            msg = "the Client is not open: use it inside `async with Client(...)`"
            raise ConfigurationError(msg)
