"""Storage backends for durable workflows.

Every name here is imported on first access (see ``pyworkflow._public``): ``import
pyworkflow`` loads no backend, and a program pays for the one it uses.
``KafkaStorageBackend`` needs the ``kafka`` extra (aiokafka), so this package imports
without it.
"""

from typing import TYPE_CHECKING, Any

from .. import _public

if TYPE_CHECKING:
    from ._file._backend import FileStorageBackend as FileStorageBackend
    from ._kafka._backend import KafkaStorageBackend as KafkaStorageBackend
    from ._memory import InMemoryStorageBackend as InMemoryStorageBackend
    from ._port import StorageBackend as StorageBackend

__all__ = ["FileStorageBackend", "InMemoryStorageBackend", "KafkaStorageBackend", "StorageBackend"]

_LAZY = _public.LazyExports(
    globals(),
    {
        "FileStorageBackend": "._file._backend",
        "InMemoryStorageBackend": "._memory",
        "KafkaStorageBackend": "._kafka._backend",
        "StorageBackend": "._port",
    },
    extras={"KafkaStorageBackend": ("aiokafka", "kafka")},
)


def __getattr__(name: str) -> Any:
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.dir()
