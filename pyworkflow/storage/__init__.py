"""Storage backends for durable workflows."""

from ._memory import InMemoryStorageBackend as InMemoryStorageBackend
from ._port import StorageBackend as StorageBackend

__all__ = ["InMemoryStorageBackend", "StorageBackend"]
