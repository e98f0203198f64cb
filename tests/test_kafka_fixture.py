"""End-to-end checks of the Kafka test fixtures against a real broker.

Sync tests driving aiokafka with ``asyncio.run`` so they do not depend on any
async pytest plugin. Requires the ``tests.kafka_fixture`` plugin.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from tests.kafka_fixture import load_kafka_local

if TYPE_CHECKING:
    from pyworkflow.testing._kafka_local import LocalKafka

pytestmark = pytest.mark.kafka

CONSUME_TIMEOUT_S = 30.0


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create ``name`` and fail with the broker's error if any topic was rejected."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=10_000,
        )
    finally:
        await admin.close()
    # CreateTopicsResponse v0..v3: topic_errors = [(topic, error_code[, error_message]), ...]
    for topic, error_code, *rest in response.topic_errors:
        if error_code != 0:
            raise AssertionError(
                f"create_topics({topic!r}) failed: {for_code(error_code).__name__} {rest}"
            )


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    """Send ``values`` one by one (idempotent, acks=all) and return their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        offsets = []
        for value in values:
            metadata = await producer.send_and_wait(topic, value=value, key=b"k")
            offsets.append(metadata.offset)
        return offsets
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read the first ``count`` values of ``topic`` from the beginning (no consumer group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(record.value for record in records if record.value is not None)
    finally:
        await consumer.stop()
    return values


def test_create_produce_consume_roundtrip(kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
    topic = f"{kafka_topic_prefix}-roundtrip"
    values = [b"one", b"two", b"three"]

    async def scenario() -> tuple[list[int], list[bytes]]:
        await create_topic(kafka_bootstrap, topic)
        offsets = await produce(kafka_bootstrap, topic, values)
        return offsets, await consume(kafka_bootstrap, topic, len(values))

    offsets, consumed = asyncio.run(scenario())

    assert offsets == [0, 1, 2]
    assert consumed == values


def test_creating_an_existing_topic_reports_an_error(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}-dup"
    asyncio.run(create_topic(kafka_bootstrap, topic))

    with pytest.raises(AssertionError, match="TopicAlreadyExistsError"):
        asyncio.run(create_topic(kafka_bootstrap, topic))


def test_topic_prefix_has_expected_shape(kafka_topic_prefix: str) -> None:
    assert kafka_topic_prefix.startswith("pwtest-")
    assert len(kafka_topic_prefix) == len("pwtest-") + 8


@pytest.mark.parametrize("how", ["graceful", "crash"])
def test_broker_restart_loses_nothing(
    kafka_bootstrap: str, kafka_broker: LocalKafka | None, kafka_topic_prefix: str, how: str
) -> None:
    if kafka_broker is None:
        pytest.skip("restart needs the local broker (not an external/container one)")
    topic = f"{kafka_topic_prefix}-restart-{how}"
    before = [b"before-1", b"before-2", b"before-3"]
    after = [b"after-1"]
    asyncio.run(create_topic(kafka_bootstrap, topic))
    assert asyncio.run(produce(kafka_bootstrap, topic, before)) == [0, 1, 2]
    old_pid = kafka_broker.pid

    if how == "graceful":
        kafka_broker.restart()
    else:
        kafka_broker.kill()
        assert not kafka_broker.is_running()
        kafka_broker.start()

    assert kafka_broker.pid != old_pid
    assert kafka_broker.bootstrap_servers == kafka_bootstrap
    assert asyncio.run(produce(kafka_bootstrap, topic, after)) == [3]
    assert asyncio.run(consume(kafka_bootstrap, topic, 4)) == before + after


def test_jar_fetch_is_skipped_once_cached(
    kafka_broker: LocalKafka | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kafka_broker is None:
        pytest.skip("only meaningful when the local broker (and its jar cache) is used")
    kafka_local = load_kafka_local()

    def maven_must_not_run(staging: Path) -> None:
        raise AssertionError(
            f"Maven was invoked again (staging {staging}) although jars are cached"
        )

    monkeypatch.setattr(kafka_local, "_run_maven", maven_must_not_run)
    libs = kafka_local.ensure_jars()

    assert (libs / kafka_local.MARKER_NAME).is_file()
    assert (libs / f"kafka_2.13-{kafka_local.KAFKA_VERSION}.jar").is_file()
