"""The aiokafka clients a Kafka backend opens, configured for what each does."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from ._settings import KafkaSettings

__all__ = ["new_offsets_consumer", "new_producer", "new_tail_consumer", "stop_client"]

_OFFSETS_BACKOFF_MS = 20  # its first call waits for topic metadata: retry soon
_ABANDON_S = 1.0


def new_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """Appends, fences, claims, projections and checkpoints: idempotent, acks from all
    in-sync replicas, no linger (an append waits on its own round trip)."""
    return AIOKafkaProducer(
        **settings.common_options(),
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
        max_batch_size=settings.max_append_bytes,
        max_request_size=settings.max_append_bytes + 65536,
    )


def new_tail_consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    """The consumer that tails the folded partitions (assigned by hand, no group)."""
    return AIOKafkaConsumer(
        **settings.common_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=max(1_048_576, settings.max_append_bytes + 65536),
        isolation_level="read_uncommitted",
    )


def new_offsets_consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    """An idle consumer for log start and end offsets: a broker answers the requests of one
    connection in order, so on the tailing consumer's connection a ListOffsets would queue
    behind the pending long-poll fetch (up to ``fetch_max_wait_ms``)."""
    return AIOKafkaConsumer(
        **settings.common_options(),
        group_id=None,
        enable_auto_commit=False,
        retry_backoff_ms=_OFFSETS_BACKOFF_MS,
    )


async def stop_client(
    name: str,
    client: AIOKafkaProducer | AIOKafkaConsumer,
    budget: float,
    log: Any,
    in_doubt: int,
) -> None:
    """Stop ``client`` within ``budget`` seconds; what goes wrong is logged, not raised.

    The producer's stop() flushes: it waits for every queued batch, forever while no broker
    answers (an idempotent producer never expires a batch). Past the budget its queued
    batches are abandoned (``in_doubt`` appends were reported as of unknown outcome).
    aiokafka's consumer stop() may raise the CancelledError of a fetch task it cancelled
    itself; that is not a cancellation of this task, so it is logged, not propagated.
    """
    try:
        async with asyncio.timeout(budget):
            await client.stop()
    except TimeoutError:
        log.warning(
            "kafka_client_stop_timed_out", client=name, seconds=round(budget, 1),
            appends_in_doubt=in_doubt,
        )  # fmt: skip
        if isinstance(client, AIOKafkaProducer):
            await _abandon(client, log)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # a real cancellation of the close
        log.warning("kafka_client_stop_interrupted", client=name)
    except (KafkaError, OSError) as exc:
        log.warning("kafka_client_stop_failed", client=name, error=repr(exc))


async def _abandon(producer: AIOKafkaProducer, log: Any) -> None:
    """Close the connections of a producer whose stop() ran out of time (its sender task
    still retries the abandoned batches; the loop's end cancels it)."""
    try:
        async with asyncio.timeout(_ABANDON_S):
            await producer.client.close()
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning("kafka_producer_abandon_failed", error=repr(exc))
