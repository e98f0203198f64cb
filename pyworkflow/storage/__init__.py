"""Storage backends for durable workflows.

``KafkaStorageBackend`` needs the ``kafka`` extra (aiokafka) and is imported on first access,
so this package imports without it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .. import _public
from ._file._backend import FileStorageBackend as FileStorageBackend
from ._memory import InMemoryStorageBackend as InMemoryStorageBackend
from ._port import StorageBackend as StorageBackend

if TYPE_CHECKING:
    from ._kafka._backend import KafkaStorageBackend as KafkaStorageBackend

__all__ = ["FileStorageBackend", "InMemoryStorageBackend", "KafkaStorageBackend", "StorageBackend"]

_public.publish(globals(), [n for n in __all__ if n != "KafkaStorageBackend"])


def __getattr__(name: str) -> Any:
    if name == "KafkaStorageBackend":
        try:
            module = importlib.import_module("._kafka._backend", __name__)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.partition(".")[0] != "aiokafka":
                raise
            msg = "KafkaStorageBackend needs aiokafka: pip install 'pyworkflow[kafka]'"
            raise ImportError(msg, name=name) from exc
        _public.publish({"__name__": __name__, name: module.KafkaStorageBackend}, [name])
        return module.KafkaStorageBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
