"""Translation of aiokafka errors into pyworkflow's StorageError, at the boundary.

Transient (:class:`~pyworkflow.TransientStorageError`: the run's owner retries the call with
backoff), the failures that a retry can cure:

* every aiokafka error whose class says ``retriable`` (``KafkaConnectionError``,
  ``NoBrokersAvailable``, ``NodeNotReadyError``, ``RequestTimedOutError``,
  ``LeaderNotAvailableError``, ``NotLeaderForPartitionError``, ``NotEnoughReplicasError``,
  the broker's ``KafkaStorageError``, ...), except ``UnknownTopicOrPartitionError``;
* no answer in time: ``KafkaTimeoutError`` (aiokafka does not mark it retriable) and
  ``TimeoutError``. An append that times out is *uncertain*: its batch may have landed. The
  owner then re-reads the log and finds its own events there or not, so retrying is safe;
* a broker that is unavailable (``BrokerNotAvailableError``, ``KafkaUnavailableError``,
  ``ReplicaNotAvailableError``, which aiokafka does not mark retriable);
* an ``OSError`` that ``storage._errors`` classifies as transient (a refused or reset
  connection, a timeout).

Permanent (a plain :class:`~pyworkflow.StorageError`): authorization and authentication
failures, records too large, corrupt records, a producer that was fenced or closed, and a
topic that is missing (``UnknownTopicOrPartitionError``: the backend creates or checks its
topics at start-up, so later it means the topic was deleted; retrying won't bring it back).
Misconfigured topics are a ``ConfigurationError`` (``_topics``), undecodable records a
``CorruptRecordError`` (``_codec``).
"""

from __future__ import annotations

import enum

from aiokafka.errors import (
    BrokerNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    RecordTooLargeError,
    ReplicaNotAvailableError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from ..._exceptions import (
    ConfigurationError,
    RunLockedError,
    StorageError,
    TransientStorageError,
    WorkflowError,
)
from .._errors import is_transient_oserror

__all__ = [
    "PartitionFencedError",
    "Stage",
    "append_too_big",
    "is_transient",
    "not_folded",
    "outside_scope",
    "permanent",
    "storage_error",
    "uncertain_append",
    "unfenced_refused",
]

_UNAVAILABLE = BrokerNotAvailableError | KafkaUnavailableError | ReplicaNotAvailableError


def is_transient(exc: BaseException) -> bool:
    """Whether a retry of the call that raised ``exc`` may succeed (see the module doc)."""
    if isinstance(exc, UnknownTopicOrPartitionError):
        return False
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError | _UNAVAILABLE)
    if isinstance(exc, OSError):  # TimeoutError is one
        return is_transient_oserror(exc)
    return False


class PartitionFencedError(RunLockedError):
    """An append rejected by a partition's fence: another writer (a worker that took the
    partition) fenced it with a newer epoch than this writer's."""

    def __init__(self, run_id: str, partition: int, epoch: int, mine: int) -> None:
        super().__init__(run_id)
        if mine:
            why = (
                f"partition {partition} was taken by another worker (fence epoch {epoch}; "
                f"this worker's is {mine}): this worker lost the run and stops executing it"
            )
        else:
            why = (
                f"partition {partition} is served by pyworkflow workers (fence epoch {epoch}) "
                "and they alone execute its runs; send commands with pyworkflow.actors.Client "
                "(start, resume_hook, cancel) instead of executing here"
            )
        self.args = (f"workflow run {run_id!r}: this append was rejected: {why}",)
        self.partition = partition


def storage_error(what: str, exc: BaseException, servers: str, timeout: float) -> StorageError:
    """A StorageError saying what failed (``what``), where, and what to do; a
    TransientStorageError if a retry can cure it (see the module doc).

    Use as ``raise storage_error(...) from exc``.
    """
    name, text = type(exc).__name__, str(exc)
    detail = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
    if isinstance(exc, KafkaConnectionError | NoBrokersAvailable | ConnectionError):
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
    elif isinstance(exc, _UNAVAILABLE):
        msg = (
            f"{what}: a Kafka broker at {servers} is not available ({detail}); check that "
            "every broker is up and the topic's partitions have their replicas"
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
    elif is_transient(exc):
        msg = (
            f"{what}: the Kafka brokers at {servers} failed the request ({detail}); the "
            "error is retriable: a retry may succeed once the cluster settles"
        )
    else:
        msg = (
            f"{what}: Kafka error from the brokers at {servers} ({detail}); check the "
            "brokers' logs and this backend's settings"
        )
    return TransientStorageError(msg) if is_transient(exc) else StorageError(msg)


# -- what the core refuses or can't tell, in words a user can act on -----------------------
def uncertain_append(
    what: str, delivering: bool, servers: str, timeout: float, expected: int, where: str
) -> TransientStorageError:
    """An append whose outcome is unknown: unacknowledged (``delivering``), or acknowledged
    at ``where`` but not folded back in time."""
    if delivering:
        msg = (
            f"{what}: the outcome is unknown: no Kafka broker at {servers} acknowledged "
            f"the batch within request_timeout={timeout:g}s (unreachable, or no partition "
            "leader). The batch stays queued in this backend's producer and may still "
            "land when a broker answers (until aclose()); if it does, every reader accepts "
            f"it only if the run still ends at sequence {expected}, so it can't overwrite "
            "anything appended meanwhile. Re-read the run before retrying"
        )
    else:
        msg = (
            f"{what}: the batch is in the log ({where}) but this backend could not fold "
            f"it back within request_timeout={timeout:g}s, so whether it was accepted "
            "(or lost to another writer) is unknown. Re-read the run before retrying"
        )
    return TransientStorageError(msg)


def unfenced_refused(topic: str, run_id: str) -> ConfigurationError:
    """An append by a writer that has not fenced its partition, on a workers-only topic."""
    msg = (
        f"appending to run {run_id!r}: topic {topic!r} deletes its events after its "
        "retention.ms, so only workers, whose checkpoints keep what live runs need, may run "
        "workflows on it. Start runs through pyworkflow.actors.Client and `pyworkflow "
        "worker`, or make the topic's retention unlimited (retention.ms=-1)"
    )
    return ConfigurationError(msg)


def append_too_big(run_id: str, count: int, size: int, limit: int, topic: str) -> StorageError:
    msg = (
        f"an append of {count} events ({size} bytes) to run {run_id!r} does not fit in one "
        f"Kafka record batch of max_append_bytes={limit}; keep step results and payloads "
        "small, or raise max_append_bytes together with the max.message.bytes of topic "
        f"{topic!r}"
    )
    return StorageError(msg)


def not_folded(what: str, topic: str, scope: frozenset[int]) -> StorageError:
    msg = (
        f"{what} of topic {topic!r}, which this backend does not fold (it folds only "
        f"partitions {sorted(scope)}: a worker's backend folds the partitions the worker "
        "owns); read it through a KafkaStorageBackend of its own, which folds all"
    )
    return StorageError(msg)


def outside_scope(scope: frozenset[int], topic: str, partitions: int) -> ConfigurationError | None:
    """The error for a scope naming partitions the topic doesn't have (None: it has them)."""
    outside = sorted(p for p in scope if not 0 <= p < partitions)
    if not outside:
        return None
    msg = (
        f"fold_partitions({sorted(scope)}): topic {topic!r} has partitions "
        f"0-{partitions - 1}; {outside} are not among them"
    )
    return ConfigurationError(msg)


class Stage(enum.Enum):
    """How far an append (or a claim) got: what a failure at that point means."""

    SENDING = "sending"
    """Handing the records to the producer: a failure here means nothing was sent."""
    DELIVERING = "delivering"
    """Queued in the producer, no broker's acknowledgement yet: the outcome is unknown."""
    FOLDING = "folding"
    """Acknowledged (in the log), not yet folded: whether it was accepted is unknown."""


def permanent(failure: WorkflowError) -> WorkflowError:
    """``failure``, as a plain StorageError if it was transient (same message)."""
    if not isinstance(failure, TransientStorageError):
        return failure
    msg = f"{failure}; the Kafka backend stopped serving: close it and create a new one"
    stopped = StorageError(msg)
    stopped.__cause__ = failure.__cause__
    return stopped
