"""The Kafka storage backend (needs the ``kafka`` extra: ``pip install 'pyworkflow[kafka]'``).

Its ``_backend`` module imports aiokafka; ``pyworkflow.storage`` imports it lazily, on first
access to ``KafkaStorageBackend``. The design is described in ``_backend.py``.
"""
