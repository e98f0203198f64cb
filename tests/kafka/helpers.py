"""Plain aiokafka helpers for inspecting the broker independently of the backend.

They run aiokafka on ``asyncio.run`` in a worker thread, so trio tests can use them too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

TIMEOUT_S = 20.0


def _in_thread(make: Any) -> Any:
    return anyio.to_thread.run_sync(lambda: asyncio.run(make()))


async def records(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` (all partitions), read from the beginning to the end."""

    async def consume() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = list(consumer.assignment())  # without a group: every partition
            assert tps, f"topic {topic} has no partitions"
            ends = await consumer.end_offsets(tps)
            out: list[Any] = []
            deadline = time.monotonic() + TIMEOUT_S
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(batch)
            return out
        finally:
            await consumer.stop()

    result: list[Any] = await _in_thread(consume)
    return result


async def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    """Topic -> {config name: value} as the broker describes them."""

    async def describe() -> dict[str, dict[str, str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
            )
        finally:
            await admin.close()
        return {
            name: {entry[0]: entry[1] for entry in entries}
            for response in responses
            for _code, _msg, _type, name, entries, *_ in response.resources
        }

    result: dict[str, dict[str, str]] = await _in_thread(describe)
    return result


async def create_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            response = await admin.create_topics(
                [NewTopic(name, 1, 1, topic_configs=configs)], timeout_ms=10_000
            )
        finally:
            await admin.close()
        for topic, code, *_ in response.topic_errors:
            assert code == 0, f"creating {topic}: {for_code(code).__name__}"

    await _in_thread(create)


async def produce_batch(
    bootstrap: str, topic: str, partition: int, key: bytes, values: list[bytes]
) -> int:
    """Write ``values`` as one record batch; return the base offset."""

    async def produce() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            batch = producer.create_batch()
            for value in values:
                assert batch.append(key=key, value=value, timestamp=None) is not None
            metadata = await (await producer.send_batch(batch, topic, partition=partition))
            return int(metadata.offset)
        finally:
            await producer.stop()

    result: int = await _in_thread(produce)
    return result


async def delete_records(bootstrap: str, topic: str, partition: int, before: int) -> None:
    """Delete a partition's records before offset ``before``, as retention would."""

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(topic, partition)
            await admin.delete_records({tp: RecordsToDelete(before)}, timeout_ms=10_000)
        finally:
            await admin.close()

    await _in_thread(delete)
