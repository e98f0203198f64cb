"""Shared fixtures: every async test runs on asyncio and on trio, in virtual time."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyworkflow import configure, reset_config
from pyworkflow.storage import FileStorageBackend, InMemoryStorageBackend, StorageBackend
from pyworkflow.testing import ManualClock

# The Kafka broker fixtures (kafka_bootstrap, kafka_broker, ...) are the package's own plugin,
# as users load it; pytester runs it in isolated sessions (tests/test_kafka_fixture.py).
pytest_plugins = ["pyworkflow.testing.pytest_plugin", "pytester"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark every ``async def`` test for anyio, which runs it once per ``anyio_backend``."""
    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    reset_config()
    yield
    reset_config()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def memory(clock: ManualClock) -> InMemoryStorageBackend:
    """A fresh in-memory backend, configured as the default, with the virtual clock."""
    storage = InMemoryStorageBackend()
    configure(storage=storage, clock=clock)
    return storage


@pytest.fixture(params=["memory", "file"])
def local_storage(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> StorageBackend:
    """A fresh memory or file backend, configured as the default, with the virtual clock."""
    backend: StorageBackend = (
        InMemoryStorageBackend()
        if request.param == "memory"
        else FileStorageBackend(tmp_path / "data", durability="none")
    )
    configure(storage=backend, clock=clock)
    return backend
