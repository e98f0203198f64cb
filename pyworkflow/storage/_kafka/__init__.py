"""The Kafka storage backend (needs the ``kafka`` extra: ``pip install 'pyworkflow[kafka]'``).

Importing this package imports aiokafka; ``pyworkflow.storage`` imports it lazily, on first
access to ``KafkaStorageBackend``. The design is described in ``_backend.py``.
"""

from ._backend import KafkaStorageBackend as KafkaStorageBackend

__all__ = ["KafkaStorageBackend"]
