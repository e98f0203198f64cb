"""Where a key lands: Kafka's default partitioner (murmur2 of the key), with the hashes of
run ids remembered.

A worker asks for a run's partition at every command and append, and the projections of a
run go to the same key's partition of ``{prefix}.runs``: aiokafka's murmur2 is pure Python
(~5 us a key), so each run id is hashed once while it is in use. The cache is bounded (it
starts over past :data:`CACHE_SIZE` ids) and shared by threads (a dict: each get and set is
atomic under the GIL).
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["CACHE_SIZE", "partition_for"]

CACHE_SIZE = 65_536
_hashes: dict[str, int] = {}


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``partitions`` that Kafka's default partitioner gives ``key``."""
    hashed = _hashes.get(key)
    if hashed is None:
        if len(_hashes) >= CACHE_SIZE:
            _hashes.clear()
        hashed = _hashes[key] = murmur2(key.encode()) & 0x7FFFFFFF
    return hashed % partitions
