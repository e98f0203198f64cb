"""Which aiokafka failures are transient (a retry may cure them) and which are permanent."""

from __future__ import annotations

import errno

import pytest
from aiokafka import errors as kafka

from pyworkflow import (
    ConfigurationError,
    CorruptRecordError,
    StorageError,
    TransientStorageError,
    WorkflowError,
)
from pyworkflow.storage._kafka._errors import is_transient, storage_error
from pyworkflow.storage._kafka._errors import permanent as _permanent

SERVERS = "broker-1:9092"


def translate(exc: BaseException) -> StorageError:
    return storage_error("appending to run 'run_1'", exc, SERVERS, 5.0)


TRANSIENT: list[BaseException] = [
    kafka.KafkaConnectionError("Unable to bootstrap from [('broker-1', 9092)]"),
    kafka.NoBrokersAvailable(),
    kafka.NodeNotReadyError("node 1"),
    kafka.RequestTimedOutError(),
    kafka.KafkaTimeoutError("Batch for TopicPartition(t, 0) made no progress"),
    kafka.LeaderNotAvailableError(),
    kafka.NotLeaderForPartitionError(),
    kafka.NotEnoughReplicasError(),
    kafka.NotEnoughReplicasAfterAppendError(),
    kafka.KafkaStorageError(),  # the broker's disk, not ours
    kafka.BrokerNotAvailableError(),
    kafka.KafkaUnavailableError(),
    kafka.ReplicaNotAvailableError(),
    kafka.StaleMetadata(),
    TimeoutError(),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
]

PERMANENT: list[BaseException] = [
    kafka.TopicAuthorizationFailedError(),
    kafka.ClusterAuthorizationFailedError(),
    kafka.AuthenticationFailedError("bad password"),
    kafka.SaslAuthenticationFailed(),
    kafka.MessageSizeTooLargeError(),
    kafka.RecordTooLargeError(),
    kafka.CorruptRecordException(),
    kafka.UnknownTopicOrPartitionError(),  # retriable to aiokafka; here: the topic was deleted
    kafka.InvalidTopicError(),
    kafka.ProducerFenced(),
    kafka.ProducerClosed(),
    kafka.OutOfOrderSequenceNumber(),
    kafka.KafkaConfigurationError("bad option"),
    kafka.UnknownError(),
    kafka.KafkaError("something else"),
    PermissionError(errno.EACCES, "Permission denied"),
    ValueError("not a Kafka error at all"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_a_retry_can_cure_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)
    error = translate(exc)
    assert type(error) is TransientStorageError
    assert error.retriable
    assert str(error).startswith("appending to run 'run_1': ")
    assert SERVERS in str(error)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_other_failures_stay_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)
    error = translate(exc)
    assert type(error) is StorageError
    assert not error.retriable
    assert str(error).startswith("appending to run 'run_1': ")
    assert SERVERS in str(error)


def test_every_retriable_aiokafka_error_but_a_missing_topic_is_transient() -> None:
    def subclasses(cls: type[kafka.KafkaError]) -> list[type[kafka.KafkaError]]:
        found = [cls]
        for sub in cls.__subclasses__():
            found += subclasses(sub)
        return found

    retriable = [c for c in subclasses(kafka.KafkaError) if c.retriable]
    assert len(retriable) > 10
    for cls in retriable:
        expected = cls is not kafka.UnknownTopicOrPartitionError
        assert is_transient(cls.__new__(cls)) is expected, cls


@pytest.mark.parametrize(
    ("exc", "advice"),
    [
        (kafka.KafkaConnectionError("refused"), "cannot reach the Kafka brokers"),
        (kafka.KafkaTimeoutError(), "no answer from the Kafka brokers at broker-1:9092 within 5s"),
        (kafka.BrokerNotAvailableError(), "check that every broker is up"),
        (kafka.NotEnoughReplicasError(), "a retry may succeed"),
        (kafka.TopicAuthorizationFailedError(), "grant this client read/write"),
        (kafka.UnknownTopicOrPartitionError(), "restart it"),
        (kafka.UnknownError(), "check the brokers' logs"),
    ],
)
def test_messages_name_what_failed_and_what_to_do(exc: BaseException, advice: str) -> None:
    assert advice in str(translate(exc))


def test_a_backend_that_stopped_serving_fails_for_good() -> None:
    transient = translate(kafka.KafkaConnectionError("refused"))
    transient.__cause__ = kafka.KafkaConnectionError("refused")
    stopped = _permanent(transient)
    assert type(stopped) is StorageError and not stopped.retriable
    assert str(stopped).startswith(str(transient))
    assert "close it and create a new one" in str(stopped)
    assert stopped.__cause__ is transient.__cause__
    for kept in (StorageError("x"), CorruptRecordError("y"), ConfigurationError("z")):
        assert _permanent(kept) is kept
    assert isinstance(_permanent(WorkflowError("w")), WorkflowError)
