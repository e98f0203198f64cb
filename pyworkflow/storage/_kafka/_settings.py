"""Settings of the Kafka backend: validated once, frozen, and the topic names they imply."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..._exceptions import ConfigurationError

__all__ = ["CHECKPOINTED_RETENTION_MS", "KafkaSettings", "TopicNames"]

CHECKPOINTED_RETENTION_MS = 7 * 24 * 3600 * 1000
"""The shortest ``retention.ms`` of an events topic accepted without
``allow_limited_retention``: then only workers, which checkpoint their partitions every 30 s,
may append to it (see ``_topics``)."""

# Kafka's legal topic characters; the longest suffix (".idempotency") must still fit in 249.
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_MAX_PREFIX = 249 - len(".idempotency")


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The seven topics of one prefix."""

    events: str
    runs: str
    steps: str
    hooks: str
    idempotency: str
    checkpoints: str
    schedules: str

    @classmethod
    def for_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            events=f"{prefix}.events",
            runs=f"{prefix}.runs",
            steps=f"{prefix}.steps",
            hooks=f"{prefix}.hooks",
            idempotency=f"{prefix}.idempotency",
            checkpoints=f"{prefix}.checkpoints",
            schedules=f"{prefix}.schedules",
        )

    @property
    def compacted(self) -> tuple[str, ...]:
        return (
            self.runs,
            self.steps,
            self.hooks,
            self.idempotency,
            self.checkpoints,
            self.schedules,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    """Everything the backend needs to connect and to create its topics."""

    bootstrap_servers: str
    topic_prefix: str = "pyworkflow"
    partitions: int = 6
    replication_factor: int | None = None
    create_topics: bool = True
    events_retention_ms: int = -1
    allow_limited_retention: bool = False
    fold_history: bool = False
    request_timeout: float = 10.0
    fetch_max_wait_ms: int = 100
    max_append_bytes: int = 1_048_576
    client_id: str = "pyworkflow"
    client_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        servers = self.bootstrap_servers
        if not isinstance(servers, str) or not servers.strip():
            msg = (
                f"KafkaStorageBackend bootstrap_servers={servers!r}: pass 'host:port' "
                "(comma-separated for several brokers)"
            )
            raise ConfigurationError(msg)
        prefix = self.topic_prefix
        if (
            not isinstance(prefix, str)
            or not _TOPIC_CHARS.fullmatch(prefix)
            or len(prefix) > _MAX_PREFIX
            or prefix in (".", "..")
        ):
            msg = (
                f"KafkaStorageBackend topic_prefix={prefix!r}: use 1-{_MAX_PREFIX} characters "
                "from A-Z a-z 0-9 . _ - (Kafka topic names)"
            )
            raise ConfigurationError(msg)
        _positive("partitions", self.partitions)
        if self.replication_factor is not None:
            _positive("replication_factor", self.replication_factor)
        _positive("fetch_max_wait_ms", self.fetch_max_wait_ms)
        _positive("max_append_bytes", self.max_append_bytes)
        if not isinstance(self.events_retention_ms, int) or self.events_retention_ms < -1:
            msg = (
                f"KafkaStorageBackend events_retention_ms={self.events_retention_ms!r}: "
                "pass -1 (keep forever, the default) or a positive number of milliseconds"
            )
            raise ConfigurationError(msg)
        if not isinstance(self.allow_limited_retention, bool):
            msg = (
                "KafkaStorageBackend allow_limited_retention="
                f"{self.allow_limited_retention!r}: pass True or False"
            )
            raise ConfigurationError(msg)
        retention = self.events_retention_ms
        if -1 < retention < CHECKPOINTED_RETENTION_MS and not self.allow_limited_retention:
            msg = (
                f"KafkaStorageBackend events_retention_ms={retention}: Kafka would delete the "
                "events of runs that are still unfinished after that long (a sleep, a hook, a "
                "run waiting on a retry), and they could never be resumed. Keep "
                "events_retention_ms=-1 (the default), or at least "
                f"{CHECKPOINTED_RETENTION_MS} (7 days) with workers, whose checkpoints keep "
                "what live runs need, or pass allow_limited_retention=True to accept the loss"
            )
            raise ConfigurationError(msg)
        timeout = self.request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            msg = f"KafkaStorageBackend request_timeout={timeout!r}: pass seconds > 0"
            raise ConfigurationError(msg)
        reserved = {"bootstrap_servers", "client_id", "request_timeout_ms"} & set(
            self.client_options
        )
        if reserved:
            msg = (
                f"KafkaStorageBackend client_options sets {sorted(reserved)}: pass these as "
                "the backend's own arguments instead"
            )
            raise ConfigurationError(msg)

    @property
    def topics(self) -> TopicNames:
        return TopicNames.for_prefix(self.topic_prefix)

    @property
    def request_timeout_ms(self) -> int:
        return int(self.request_timeout * 1000)

    def common_options(self) -> dict[str, Any]:
        """Keyword arguments shared by the admin client, the producer and the consumer."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            **self.client_options,
        }


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"KafkaStorageBackend {name}={value!r}: pass a positive integer"
        raise ConfigurationError(msg)
