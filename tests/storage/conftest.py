"""The storage backends under test, in one registry.

Every test that takes the ``backend`` fixture runs once per entry of :data:`BACKENDS` (and
on asyncio and trio). To put another backend through the contract suite (e.g. Kafka), add
one :class:`BackendSpec` to :data:`BACKENDS`: a name, an async context manager factory that
yields a fresh, empty backend, and the marks its tests need (``pytest.mark.kafka``).

``reopen`` gives tests a second instance on the same storage as ``backend`` (what another
process, or this one after a restart, would open); backends without one (memory) skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyworkflow.storage import (
    FileStorageBackend,
    InMemoryStorageBackend,
    KafkaStorageBackend,
    StorageBackend,
)

BackendFactory = Callable[
    [pytest.FixtureRequest, Path], AbstractAsyncContextManager[StorageBackend]
]


@dataclass(frozen=True)
class BackendSpec:
    """One backend of the contract suite."""

    name: str
    make: BackendFactory
    """Yields a fresh, empty backend; may ask ``request`` for other fixtures."""
    marks: tuple[pytest.MarkDecorator, ...] = ()
    shared: bool = True
    """Whether ``make`` called again in the same test opens the same storage (a folder, a
    topic prefix): another instance, as another process would see it."""


@asynccontextmanager
async def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    backend = InMemoryStorageBackend()
    try:
        yield backend
    finally:
        await backend.aclose()


@asynccontextmanager
async def _file(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    backend = FileStorageBackend(tmp_path / "workflow_data")
    try:
        yield backend
    finally:
        await backend.aclose()


@asynccontextmanager
async def _kafka(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    """A Kafka backend on the session's broker, with topics of its own (a unique prefix)."""
    backend = KafkaStorageBackend(
        request.getfixturevalue("kafka_bootstrap"),
        topic_prefix=request.getfixturevalue("kafka_topic_prefix"),
        partitions=2,
    )
    try:
        await backend.start()
        yield backend
    finally:
        await backend.aclose()


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("memory", _memory, shared=False),
    BackendSpec("file", _file),
    BackendSpec("kafka", _kafka, marks=(pytest.mark.kafka,)),
)


@pytest.fixture(params=[pytest.param(spec, id=spec.name, marks=spec.marks) for spec in BACKENDS])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[StorageBackend]:
    """A fresh backend of each registered kind."""
    spec: BackendSpec = request.param
    async with spec.make(request, tmp_path) as storage:
        yield storage


Reopen = Callable[[], AbstractAsyncContextManager[StorageBackend]]


@pytest.fixture
def reopen(request: pytest.FixtureRequest, tmp_path: Path, backend: StorageBackend) -> Reopen:
    """Opens another instance on ``backend``'s storage; skips backends that can't."""
    spec: BackendSpec = request.node.callspec.params["backend"]
    if not spec.shared:
        pytest.skip(f"a {spec.name} backend can't be opened twice")
    return lambda: spec.make(request, tmp_path)
