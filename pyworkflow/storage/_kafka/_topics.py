"""Creating the prefix's topics if missing, and checking the configs of existing ones."""

from __future__ import annotations

import asyncio
from typing import Any

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
from ._settings import KafkaSettings

__all__ = ["ensure_topics", "wanted_configs"]

# The idempotency topic's claims are "first record wins"; compaction keeps the latest
# record of a key, so a losing claim must not outlive the winner's before the loser's
# repair record lands. A long compaction lag makes that window irrelevant.
_CLAIM_COMPACTION_LAG_MS = 24 * 3600 * 1000
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
        },
        topics.runs: compact,
        topics.steps: compact,
        topics.hooks: compact,
        topics.idempotency: {**compact, "min.compaction.lag.ms": str(_CLAIM_COMPACTION_LAG_MS)},
    }


async def ensure_topics(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> None:
    """Create missing topics (if allowed) and check every topic's ``cleanup.policy``.

    Raises:
        ConfigurationError: a topic is missing (``create_topics=False``), has the wrong
            ``cleanup.policy``, or can't be created with the settings' replication factor.
        StorageError: the brokers refused the creation for another reason.
    """
    wanted = wanted_configs(settings)
    if settings.create_topics:
        await _create(admin, settings, wanted)
    policies = await _describe_policies(admin, list(wanted), settings.create_topics)
    for topic, configs in wanted.items():
        want, have = configs["cleanup.policy"], policies.get(topic)
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


async def _describe_policies(
    admin: AIOKafkaAdminClient, topics: list[str], just_created: bool
) -> dict[str, str]:
    """Topic -> cleanup.policy for the topics that exist (retrying briefly after creation,
    while the new topics propagate to every broker's metadata)."""
    policies: dict[str, str] = {}
    for _ in range(_DESCRIBE_ATTEMPTS):
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t, {"cleanup.policy": None})
            for t in topics
            if t not in policies
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
                policies[name] = _entry(entries, "cleanup.policy")
        if not (missing and just_created):
            break
        await asyncio.sleep(_DESCRIBE_BACKOFF)
    return policies


def _entry(entries: list[Any], name: str) -> str:
    for entry in entries:
        if entry[0] == name:
            return str(entry[1])
    return ""
