"""Process-wide configuration: ``configure()`` and ``reset_config()``.

One :class:`Settings` object owns the default storage, clock, logger and durability. It is
replaced (never mutated in place) by ``configure``, so a run that started with one setting
keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import storage as storage_package
from ._exceptions import ConfigurationError
from ._execution._clock import Clock, SystemClock
from ._execution._state_cache import StateCache
from ._logging import PROCESS_LOG, make_logger

if TYPE_CHECKING:
    from ._core._records import WorkflowRun
    from .storage import StorageBackend

__all__ = [
    "Host",
    "Settings",
    "add_host",
    "configure",
    "default_storage",
    "engine_for",
    "host_for",
    "remove_host",
    "reset_config",
    "settings",
    "state_cache",
]

_UNSET: Any = object()
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    storage: StorageBackend | None = None
    default_durable: bool = True
    clock: Clock = field(default_factory=SystemClock)
    log_level: str = "warning"
    log_format: str = "console"
    log: Any = field(default_factory=make_logger)


class Host(Protocol):
    """What the module-level API routes to when a supervisor hosts a storage's runs."""

    async def start_and_rest(
        self,
        wf: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        idempotency_key: str | None,
    ) -> str: ...

    async def resume_and_rest(self, run_id: str) -> Any: ...

    async def cancel_and_rest(self, run_id: str, reason: str | None) -> bool: ...

    async def resume_hook_and_rest(self, token: str, payload: Any) -> WorkflowRun: ...

    async def host_started_and_rest(self, run_id: str) -> None: ...


class _Holder:
    """Holds the current Settings; the one module-level object of the configuration."""

    def __init__(self) -> None:
        self.current = Settings()
        self.fallback_storage: StorageBackend | None = None
        self.states = StateCache()
        self.hosts: dict[int, tuple[StorageBackend, Host]] = {}
        """Supervisors open in this process, by the id of the storage whose runs they host."""
        self.engine: tuple[StorageBackend, Settings, Any] | None = None
        """The module-level API's last engine, with the storage and settings it was made
        for (an engine serves any number of runs at once: the Supervisor shares one)."""


_holder = _Holder()


def settings() -> Settings:
    """The settings in force now."""
    return _holder.current


def state_cache() -> StateCache:
    """The process-wide cache of folded run states (see ``_state_cache``)."""
    return _holder.states


def engine_for(storage: StorageBackend, make: Callable[[StorageBackend, Settings], T]) -> T:
    """The module-level API's engine on ``storage`` under the settings in force: the one
    made last if it was made for both, else ``make(storage, settings)``, kept."""
    kept, current = _holder.engine, _holder.current
    if kept is not None and kept[0] is storage and kept[1] is current:
        return kept[2]  # type: ignore[no-any-return]
    engine = make(storage, current)
    _holder.engine = (storage, current, engine)
    return engine


def host_for(storage: StorageBackend) -> Host | None:
    """The supervisor that hosts ``storage``'s runs in this process, if one is open."""
    entry = _holder.hosts.get(id(storage))
    return entry[1] if entry is not None and entry[0] is storage else None


def add_host(storage: StorageBackend, host: Host) -> None:
    """Route the module-level API's calls on ``storage`` to ``host`` (one per storage)."""
    if host_for(storage) is not None:
        msg = (
            f"a Supervisor already hosts the runs of {storage!r} in this process; "
            "use that one (one owner per run)"
        )
        raise ConfigurationError(msg)
    _holder.hosts[id(storage)] = (storage, host)


def remove_host(storage: StorageBackend, host: Host) -> None:
    if host_for(storage) is host:
        del _holder.hosts[id(storage)]


def default_storage() -> StorageBackend:
    """The configured storage, or one process-wide in-memory backend."""
    configured = _holder.current.storage
    if configured is not None:
        return configured
    if _holder.fallback_storage is None:
        _holder.fallback_storage = storage_package.InMemoryStorageBackend()  # a lazy export
    return _holder.fallback_storage


def configure(
    *,
    storage: StorageBackend | None = _UNSET,
    default_durable: bool = _UNSET,
    clock: Clock = _UNSET,
    log_level: str = _UNSET,
    log_format: str = _UNSET,
) -> None:
    """Set process-wide defaults; arguments not given keep their current value.

    Args:
        storage: the backend durable workflows use (default: one in-memory backend).
        default_durable: durability of workflows whose decorator doesn't say.
        clock: where the engine reads the time (``pyworkflow.testing.ManualClock`` in tests).
        log_level: ``"debug"``, ``"info"``, ``"warning"`` (default) or ``"error"``.
        log_format: ``"console"`` (default) or ``"json"``, for log collectors.
    """
    changes: dict[str, Any] = {}
    if storage is not _UNSET:
        if storage is not None and not _looks_like_storage(storage):
            msg = (
                f"configure(storage={storage!r}): not a storage backend; pass e.g. "
                "InMemoryStorageBackend() or FileStorageBackend('./workflow_data')"
            )
            raise ConfigurationError(msg)
        changes["storage"] = storage
    if default_durable is not _UNSET:
        if not isinstance(default_durable, bool):
            msg = f"configure(default_durable={default_durable!r}): pass True or False"
            raise ConfigurationError(msg)
        changes["default_durable"] = default_durable
    if clock is not _UNSET:
        if not callable(getattr(clock, "now", None)):
            msg = f"configure(clock={clock!r}): a clock needs now() and sleep()"
            raise ConfigurationError(msg)
        changes["clock"] = clock
    current = _holder.current
    level = current.log_level if log_level is _UNSET else log_level
    fmt = current.log_format if log_format is _UNSET else log_format
    if (level, fmt) != (current.log_level, current.log_format):
        try:
            changes["log"] = make_logger(level, fmt)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        changes["log_level"], changes["log_format"] = level, fmt
    _holder.current = replace(current, **changes)
    PROCESS_LOG.logger = _holder.current.log  # for the storage layer's FollowingLoggers


def reset_config() -> None:
    """Back to defaults: in-memory storage (a fresh one), durable, system clock, quiet logs."""
    _holder.current = Settings()
    PROCESS_LOG.logger = _holder.current.log
    _holder.fallback_storage = None
    _holder.states = StateCache()
    _holder.engine = None


def _looks_like_storage(obj: object) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("append", "read", "get_run", "lock_run"))
