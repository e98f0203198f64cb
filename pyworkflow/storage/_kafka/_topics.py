"""Creating the prefix's topics if missing, and checking the configs of existing ones.

What is checked, on every start-up, whoever created the topics:

* ``cleanup.policy``: ``delete`` on the events topic (compaction would drop events),
  exactly ``compact`` on the others (``compact,delete`` would expire records; on the
  idempotency topic, claims, so that a key could be claimed twice).
* The events topic's ``retention.bytes`` must be ``-1``, and its ``retention.ms`` ``-1`` or
  at least :data:`CHECKPOINTED_RETENTION_MS` (7 days). A limit lets Kafka delete the oldest
  events of a partition, which may belong to runs still asleep or waiting on a hook; such a
  run could then be neither resumed nor read (the fold reports it, see ``_views``). Every
  reader folds a partition from its newest checkpoint (``_checkpoint``), which holds the
  live runs' events, and workers write one every 30 s for each partition that changed: with
  a time limit far above that, and only workers appending, what a live run needs is always
  in a checkpoint newer than anything retention deletes. So such a topic is accepted
  *workers only*: an append by a writer that has not fenced the run's partition (a
  module-level call in local mode, which writes no checkpoints) is refused. What retention
  deletes is then the events of runs finished long ago: their records stay in
  ``{prefix}.runs``, and reading their events raises ``RunStartDeletedError``.
  ``allow_limited_retention=True`` accepts any limit, for every writer (a warning at
  start-up).
* Not ``min.compaction.lag.ms`` nor ``segment.ms``/``delete.retention.ms``: no correctness
  depends on them. Claims carry record keys of their own (``_codec``), so compaction never
  replaces a claim by a later one; the projections topics hold the latest record of each
  key by design. The only tombstones are those of deleted schedules (``_schedules``).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidReplicationFactorError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from ..._exceptions import ConfigurationError, StorageError, TransientStorageError
from ._errors import is_transient
from ._settings import CHECKPOINTED_RETENTION_MS, KafkaSettings

__all__ = ["Retention", "ensure_topics", "wanted_configs"]


class Retention(NamedTuple):
    """The events topic's retention limits (config name -> value; empty: unlimited)."""

    limited: dict[str, str]
    workers_only: bool
    """Accepted because only workers, which checkpoint, append (see the module doc)."""

# Version-1 claims (written by pyworkflow before claims had record keys of their own) shared
# one record key per idempotency key, and relied on the loser's repair record to keep the
# winner through compaction. The lag keeps such older records uncompacted for a day; new
# claims don't need it.
_CLAIM_COMPACTION_LAG_MS = 24 * 3600 * 1000
_RETENTION = ("retention.ms", "retention.bytes")
_WHY = {
    "delete": "the events topic is the durable log; compaction would drop events",
    "compact": "it keeps the latest record per key, and must not expire old keys",
}
_DESCRIBE_ATTEMPTS = 20
_DESCRIBE_BACKOFF = 0.05


def wanted_configs(settings: KafkaSettings) -> dict[str, dict[str, str]]:
    """Topic name -> the configs pyworkflow creates it with."""
    topics = settings.topics
    compact = {"cleanup.policy": "compact"}
    return {
        topics.events: {
            "cleanup.policy": "delete",
            "retention.ms": str(settings.events_retention_ms),
            "retention.bytes": "-1",
        },
        topics.runs: compact,
        topics.steps: compact,
        topics.hooks: compact,
        topics.idempotency: {**compact, "min.compaction.lag.ms": str(_CLAIM_COMPACTION_LAG_MS)},
        topics.checkpoints: compact,
        topics.schedules: compact,
    }


async def ensure_topics(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> Retention:
    """Create missing topics (if allowed) and check every topic's configs (module doc).

    Returns the events topic's retention limits, and whether they make it workers only.

    Raises:
        ConfigurationError: a topic is missing (``create_topics=False``), has the wrong
            ``cleanup.policy``, an events topic has limited retention (without
            ``allow_limited_retention``), or a topic can't be created with the settings'
            replication factor.
        StorageError: the brokers refused the creation for another reason.
    """
    wanted = wanted_configs(settings)
    if settings.create_topics:
        await _create(admin, settings, wanted)
    described = await _describe(admin, list(wanted), settings.create_topics)
    for topic, configs in wanted.items():
        want, found = configs["cleanup.policy"], described.get(topic)
        have = None if found is None else found.get("cleanup.policy", "")
        if have is None:
            msg = (
                f"Kafka topic {topic!r} does not exist on {settings.bootstrap_servers}; create "
                f"it with cleanup.policy={want}, or pass create_topics=True"
            )
            raise ConfigurationError(msg)
        if have != want:
            msg = (
                f"Kafka topic {topic!r} has cleanup.policy={have!r}, but pyworkflow needs "
                f"{want!r} ({_WHY[want]}). Fix it with `kafka-configs.sh --bootstrap-server "
                f"{settings.bootstrap_servers} --alter --entity-type topics --entity-name "
                f"{topic} --add-config cleanup.policy={want}`, or use another topic_prefix"
            )
            raise ConfigurationError(msg)
    return _check_retention(settings, described[settings.topics.events])


def _check_retention(settings: KafkaSettings, configs: dict[str, str]) -> Retention:
    topic, servers = settings.topics.events, settings.bootstrap_servers
    limited = {name: configs[name] for name in _RETENTION if configs.get(name, "-1") != "-1"}
    if settings.allow_limited_retention or not limited:
        return Retention(limited, workers_only=False)
    if list(limited) == ["retention.ms"] and int(limited["retention.ms"]) >= (
        CHECKPOINTED_RETENTION_MS
    ):
        return Retention(limited, workers_only=True)
    if limited:
        have = ", ".join(f"{name}={value}" for name, value in limited.items())
        fix = ",".join(f"{name}=-1" for name in limited)
        msg = (
            f"Kafka topic {topic!r} has {have}: Kafka deletes its oldest events past that "
            "age or size, the events of runs still unfinished (asleep, waiting on a hook) "
            "included, and such a run could then be neither resumed nor read. Set unlimited "
            f"retention with `kafka-configs.sh --bootstrap-server {servers} --alter "
            f"--entity-type topics --entity-name {topic} --add-config {fix}`; or, if only "
            "workers run the workflows of this prefix, a retention.ms of at least "
            f"{CHECKPOINTED_RETENTION_MS} (7 days) with retention.bytes=-1: the workers' "
            "checkpoints (snapshots of the live runs' state) keep what those runs need. "
            "Or pass allow_limited_retention=True to accept the loss"
        )
        raise ConfigurationError(msg)
    return Retention(limited, workers_only=False)


async def _create(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, wanted: dict[str, dict[str, str]]
) -> None:
    replication = settings.replication_factor
    if replication is None:
        cluster = await admin.describe_cluster()
        replication = max(1, min(3, len(cluster["brokers"])))
    response = await admin.create_topics(
        [
            NewTopic(topic, settings.partitions, replication, topic_configs=configs)
            for topic, configs in wanted.items()
        ],
        timeout_ms=settings.request_timeout_ms,
    )
    # CreateTopicsResponse v0..v3: topic_errors = [(topic, error_code[, error_message]), ...]
    for topic, code, *message in response.topic_errors:
        if code == 0:
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue
        text = f"{error.__name__}: {message[0] if message and message[0] else error.description}"
        if error in (InvalidReplicationFactorError, PolicyViolationError):
            msg = (
                f"creating Kafka topic {topic!r} with {settings.partitions} partitions and "
                f"replication factor {replication} was refused ({text}); pass a "
                "replication_factor no larger than the number of brokers"
            )
            raise ConfigurationError(msg)
        if is_transient(error()):
            msg = (
                f"creating Kafka topic {topic!r} on {settings.bootstrap_servers} failed "
                f"({text}); the error is retriable: starting the backend again may succeed"
            )
            raise TransientStorageError(msg)
        msg = (
            f"creating Kafka topic {topic!r} on {settings.bootstrap_servers} failed ({text}); "
            "create it by hand or grant this client the right to create topics"
        )
        raise StorageError(msg)


async def _describe(
    admin: AIOKafkaAdminClient, topics: list[str], just_created: bool
) -> dict[str, dict[str, str]]:
    """Topic -> the configs checked here, for the topics that exist (retrying briefly after
    creation, while the new topics propagate to every broker's metadata)."""
    names = {"cleanup.policy": None, **dict.fromkeys(_RETENTION)}
    described: dict[str, dict[str, str]] = {}
    for _ in range(_DESCRIBE_ATTEMPTS):
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t, dict(names))
            for t in topics
            if t not in described
        ]
        missing = False
        for response in await admin.describe_configs(resources):
            for code, _message, _type, name, entries, *_ in response.resources:
                if code and for_code(code) is UnknownTopicOrPartitionError:
                    missing = True
                    continue
                if code:
                    error = for_code(code)
                    msg = f"describing Kafka topic {name!r} failed: {error.__name__}"
                    if is_transient(error()):
                        msg += "; the error is retriable: starting the backend again may succeed"
                        raise TransientStorageError(msg)
                    msg += "; check this client's rights on the topics and the brokers' logs"
                    raise StorageError(msg)
                described[name] = {str(e[0]): str(e[1]) for e in entries if e[0] in names}
        if not (missing and just_created):
            break
        await asyncio.sleep(_DESCRIBE_BACKOFF)
    return described
