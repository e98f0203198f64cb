"""Translation of aiokafka errors into pyworkflow's StorageError, at the boundary."""

from __future__ import annotations

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from ..._exceptions import StorageError

__all__ = ["storage_error"]


def storage_error(what: str, exc: BaseException, servers: str, timeout: float) -> StorageError:
    """A StorageError saying what failed (``what``), where, and what to do.

    Use as ``raise storage_error(...) from exc``.
    """
    name, text = type(exc).__name__, str(exc)
    detail = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
    if isinstance(exc, KafkaConnectionError | NoBrokersAvailable):
        msg = (
            f"{what}: cannot reach the Kafka brokers at {servers} ({detail}); check that a "
            "broker runs there and that bootstrap_servers is right"
        )
    elif isinstance(exc, KafkaTimeoutError | TimeoutError):
        msg = (
            f"{what}: no answer from the Kafka brokers at {servers} within {timeout:g}s "
            f"({detail}); check that the brokers are up and the topic's partitions have a "
            "leader, or raise request_timeout for a slow cluster"
        )
    elif isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError):
        msg = (
            f"{what}: the broker at {servers} refused the record as too large ({detail}); "
            "keep step results and payloads small, or raise the topic's max.message.bytes "
            "and the backend's max_append_bytes together"
        )
    elif isinstance(exc, TopicAuthorizationFailedError):
        msg = (
            f"{what}: the brokers at {servers} deny access to the topic ({detail}); grant "
            "this client read/write (and create) rights on the prefix's topics"
        )
    elif isinstance(exc, UnknownTopicOrPartitionError):
        msg = (
            f"{what}: a topic is missing on {servers} ({detail}); it was deleted while the "
            "backend ran: restart it (with create_topics=True it recreates the topics)"
        )
    else:
        msg = f"{what}: Kafka error from the brokers at {servers} ({detail})"
    return StorageError(msg)
