"""Fixtures of the Kafka backend tests: backends on the session broker, closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pyworkflow.storage import KafkaStorageBackend

MakeBackend = Callable[..., Awaitable[KafkaStorageBackend]]


@pytest.fixture
async def make_backend(
    kafka_bootstrap: str, kafka_topic_prefix: str, anyio_backend: str
) -> AsyncIterator[MakeBackend]:
    """``await make_backend(**options)``: a started backend on this test's topic prefix
    (several calls give several independent instances on the same topics)."""
    opened: list[KafkaStorageBackend] = []

    async def make(**options: Any) -> KafkaStorageBackend:
        options.setdefault("topic_prefix", kafka_topic_prefix)
        options.setdefault("partitions", 2)
        backend = KafkaStorageBackend(kafka_bootstrap, **options)
        opened.append(backend)
        await backend.start()
        return backend

    try:
        yield make
    finally:
        for backend in opened:
            await backend.aclose()
