"""Process-wide configuration: ``configure()`` and ``reset_config()``.

One :class:`Settings` object owns the default storage, clock, logger and durability. It is
replaced (never mutated in place) by ``configure``, so a run that started with one setting
keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError
from ._execution._clock import Clock, SystemClock
from ._execution._state_cache import StateCache
from ._logging import make_logger
from .storage._memory import InMemoryStorageBackend

if TYPE_CHECKING:
    from .storage import StorageBackend

__all__ = [
    "Settings",
    "configure",
    "default_storage",
    "reset_config",
    "settings",
    "state_cache",
]

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Settings:
    storage: StorageBackend | None = None
    default_durable: bool = True
    clock: Clock = field(default_factory=SystemClock)
    log_level: str = "warning"
    log_format: str = "console"
    log: Any = field(default_factory=make_logger)


class _Holder:
    """Holds the current Settings; the one module-level object of the configuration."""

    def __init__(self) -> None:
        self.current = Settings()
        self.fallback_storage: StorageBackend | None = None
        self.states = StateCache()


_holder = _Holder()


def settings() -> Settings:
    """The settings in force now."""
    return _holder.current


def state_cache() -> StateCache:
    """The process-wide cache of folded run states (see ``_state_cache``)."""
    return _holder.states


def default_storage() -> StorageBackend:
    """The configured storage, or one process-wide in-memory backend."""
    configured = _holder.current.storage
    if configured is not None:
        return configured
    if _holder.fallback_storage is None:
        _holder.fallback_storage = InMemoryStorageBackend()
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


def reset_config() -> None:
    """Back to defaults: in-memory storage (a fresh one), durable, system clock, quiet logs."""
    _holder.current = Settings()
    _holder.fallback_storage = None
    _holder.states = StateCache()


def _looks_like_storage(obj: object) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("append", "read", "get_run", "lock_run"))
