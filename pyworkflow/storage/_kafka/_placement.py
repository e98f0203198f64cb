"""Where a key lands: Kafka's default partitioner (murmur2 of the key), with the hashes of
run ids remembered.

A worker asks for a run's partition at every command and append, and the projections of a
run go to the same key's partition of ``{prefix}.runs``: aiokafka's murmur2 is pure Python
(~5 us a key), so each run id is hashed once while it is in use. Each backend owns a
:class:`KeyHashes`; it is bounded (it starts over past ``size`` keys) and shared by the
backend's threads (a dict: each get and set is atomic under the GIL).
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["KeyHashes"]


class KeyHashes:
    """Kafka's default placement of keys, with the hashes of recent keys remembered."""

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._hashes: dict[str, int] = {}

    def partition(self, key: str, partitions: int) -> int:
        """The partition of ``partitions`` that Kafka's default partitioner gives ``key``."""
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key.encode()) & 0x7FFFFFFF
        return hashed % partitions
