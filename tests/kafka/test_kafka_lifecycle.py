"""Starting, closing, failing clearly, and importing without the ``kafka`` extra."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import anyio
import pytest

from pyworkflow import ConfigurationError, RunLockedError, StorageError
from pyworkflow.storage import KafkaStorageBackend
from tests.storage.helpers import History, started

from .conftest import MakeBackend


def kafka_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyworkflow-kafka")]


async def test_an_unreachable_broker_is_a_clear_error_in_bounded_time() -> None:
    storage = KafkaStorageBackend("127.0.0.1:9", topic_prefix="nowhere", request_timeout=3)
    began = time.monotonic()
    with pytest.raises(StorageError, match=r"cannot reach the Kafka brokers at 127\.0\.0\.1:9"):
        await storage.start()
    assert time.monotonic() - began < 6
    with pytest.raises(StorageError, match="cannot reach"):  # a call retries the start-up
        await storage.get_run("run_x")
    assert kafka_threads() == []
    await storage.aclose()


@pytest.mark.kafka
async def test_the_first_call_starts_it_and_aclose_ends_its_thread(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    storage = KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=1)
    assert kafka_threads() == []
    h = History()
    await storage.append(h.run_id, [started(h)], expected_sequence=0)  # starts it
    assert len(kafka_threads()) == 1

    await storage.aclose()
    await storage.aclose()  # idempotent
    assert kafka_threads() == []
    with pytest.raises(StorageError, match="closed"):
        await storage.read(h.run_id)

    async with KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix) as again:
        assert len(await again.read(h.run_id)) == 1
    assert kafka_threads() == []


@pytest.mark.kafka
async def test_concurrent_first_calls_share_one_start(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    storage = KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=1)
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(storage.list_hooks)
        assert len(kafka_threads()) == 1
    finally:
        await storage.aclose()


async def test_lock_run_is_exclusive_within_the_process(make_backend: MakeBackend) -> None:
    storage = await make_backend()
    async with storage.lock_run("run_1"):
        with pytest.raises(RunLockedError):
            async with storage.lock_run("run_1"):
                pass
        async with storage.lock_run("run_2"):
            pass
    async with storage.lock_run("run_1"):
        pass


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bootstrap_servers": ""}, "bootstrap_servers"),
        ({"topic_prefix": "bad prefix!"}, "topic_prefix"),
        ({"partitions": 0}, "partitions"),
        ({"replication_factor": -1}, "replication_factor"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"events_retention_ms": -5}, "events_retention_ms"),
        ({"client_options": {"client_id": "x"}}, "client_options"),
    ],
)
def test_bad_settings_are_refused_at_once(options: dict[str, object], match: str) -> None:
    kwargs: dict[str, object] = {"bootstrap_servers": "localhost:9092", **options}
    with pytest.raises(ConfigurationError, match=match):
        KafkaStorageBackend(**kwargs)  # type: ignore[arg-type]


def test_the_core_package_imports_without_aiokafka() -> None:
    code = (
        "import sys; sys.modules['aiokafka'] = None\n"
        "import pyworkflow, pyworkflow.storage\n"
        "from pyworkflow.storage import InMemoryStorageBackend\n"
        "try:\n"
        "    pyworkflow.storage.KafkaStorageBackend\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'pyworkflow[kafka]'" in done.stdout


async def test_a_cancelled_call_leaves_the_backend_usable(make_backend: MakeBackend) -> None:
    storage = await make_backend()
    h = History()
    await storage.append(h.run_id, [started(h)], expected_sequence=0)
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled while the call is on the Kafka loop's side
        await storage.read(h.run_id)
    assert scope.cancelled_caught
    assert len(await storage.read(h.run_id)) == 1
