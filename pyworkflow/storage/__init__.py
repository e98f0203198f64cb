"""Storage backends for durable workflows."""

from ._file import FileStorageBackend as FileStorageBackend
from ._memory import InMemoryStorageBackend as InMemoryStorageBackend
from ._port import StorageBackend as StorageBackend

__all__ = ["FileStorageBackend", "InMemoryStorageBackend", "StorageBackend"]
