"""Pytest plugin: a real Kafka broker for the test session.

Register with ``pytest_plugins = ["tests.kafka_fixture"]`` (or ``-p tests.kafka_fixture``).

Fixtures:

* ``kafka_bootstrap`` (session): bootstrap servers string of a running broker.
* ``kafka_broker`` (session): the :class:`LocalKafka` object when this plugin
  started a local broker (so tests can ``restart()`` / ``kill()`` it), else ``None``.
* ``kafka_topic_prefix`` (function): a unique topic-name prefix per test.

Broker selection, first match wins:

1. ``$KAFKA_BOOTSTRAP_SERVERS`` (an external broker; never stopped by us);
2. testcontainers' ``KafkaContainer().with_kraft()`` if a Docker engine answers;
3. a local ``java`` broker from ``pyworkflow.testing.LocalKafka`` (no Docker needed).

``$PYWORKFLOW_KAFKA_BACKEND=local|testcontainers`` forces 2 or 3 (default ``auto``);
``$PYWORKFLOW_KAFKA_IMAGE`` overrides the container image.

If no broker can be started the Kafka tests are skipped, except with
``CI=true`` where the session fails loudly instead.

Every test using ``kafka_bootstrap``/``kafka_broker`` gets the ``kafka`` marker
automatically, so ``-m kafka`` / ``-m "not kafka"`` select them.
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import pytest

from pyworkflow.testing import _kafka_local

if TYPE_CHECKING:
    from pyworkflow.testing import LocalKafka

KAFKA_MARKER = "kafka"
KAFKA_FIXTURES = frozenset({"kafka_bootstrap", "kafka_broker"})
BACKEND_ENV = "PYWORKFLOW_KAFKA_BACKEND"
IMAGE_ENV = "PYWORKFLOW_KAFKA_IMAGE"
DEFAULT_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers 4.x default, KRaft-capable
DOCKER_PING_TIMEOUT_S = 3
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"



@dataclass(frozen=True)
class KafkaSession:
    """What the session-scoped broker fixture hands out."""

    bootstrap_servers: str
    broker: LocalKafka | None
    source: str


class BrokerUnavailable(Exception):
    """No Kafka broker could be provided; the message says why and what to do."""


# --------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{KAFKA_MARKER}: needs a real Kafka broker (see tests/kafka_fixture.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        if KAFKA_FIXTURES.intersection(fixturenames):
            item.add_marker(KAFKA_MARKER)


# --------------------------------------------------------------------------
# Broker providers
# --------------------------------------------------------------------------


def load_kafka_local() -> ModuleType:
    """The local broker launcher's module (``pyworkflow.testing``'s ``LocalKafka`` lives there)."""
    return _kafka_local


def _docker_socket_missing() -> bool:
    """Cheap pre-check: the Docker host testcontainers would use is a unix socket that is absent."""
    try:
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return True
    host = get_docker_host() or f"unix://{DEFAULT_DOCKER_SOCKET}"
    return host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists()


def docker_engine_answers() -> bool:
    """True if a Docker engine responds to a ping within a few seconds."""
    if _docker_socket_missing():
        return False
    try:
        from docker.errors import DockerException
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return False
    # docker.from_env() leaks its HTTP socket when the daemon does not answer; keep the
    # resulting ResourceWarning from surfacing later as an unraisable-exception error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            # testcontainers' wrapper resolves the host exactly as KafkaContainer will
            # (~/.testcontainers.properties, DOCKER_HOST, docker context).
            client = DockerClient(timeout=DOCKER_PING_TIMEOUT_S).client
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (DockerException, OSError):
            return False
        finally:
            gc.collect()


def _start_container(stack: ExitStack) -> KafkaSession:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14 layout
        from testcontainers.kafka import KafkaContainer

    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    try:
        container = KafkaContainer(image).with_kraft()
        stack.enter_context(container)
        servers = str(container.get_bootstrap_server())
    except Exception as exc:  # docker/testcontainers raise many unrelated error types
        raise BrokerUnavailable(
            f"testcontainers KafkaContainer({image!r}) failed: {exc!r}"
        ) from exc
    return KafkaSession(servers, None, f"testcontainers {image}")


def _start_local(stack: ExitStack) -> KafkaSession:
    kafka_local = load_kafka_local()
    broker = kafka_local.LocalKafka()
    stack.callback(broker.close)
    try:
        broker.start()
    except kafka_local.KafkaLocalError as exc:
        raise BrokerUnavailable(
            f"local Kafka broker (pyworkflow.testing.LocalKafka) failed: {exc}\n"
            "Hint: run `python -m pyworkflow.testing kafka fetch` (needs Maven + Java 17), "
            "or set KAFKA_BOOTSTRAP_SERVERS to an existing broker."
        ) from exc
    return KafkaSession(broker.bootstrap_servers, broker, f"local java broker pid={broker.pid}")


def _choose_provider() -> Callable[[ExitStack], KafkaSession]:
    backend = os.environ.get(BACKEND_ENV, "auto").strip().lower()
    if backend == "local":
        return _start_local
    if backend == "testcontainers":
        return _start_container
    if backend != "auto":
        raise BrokerUnavailable(
            f"{BACKEND_ENV}={backend!r}: expected auto, local or testcontainers"
        )
    return _start_container if docker_engine_answers() else _start_local


def _unavailable(reason: str) -> NoReturn:
    message = f"No Kafka broker available for the kafka tests: {reason}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _kafka_session() -> Iterator[KafkaSession]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield KafkaSession(external, None, "KAFKA_BOOTSTRAP_SERVERS")
        return
    with ExitStack() as stack:
        try:
            session = _choose_provider()(stack)
        except BrokerUnavailable as exc:
            _unavailable(str(exc))
        yield session


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_session: KafkaSession) -> str:
    """Bootstrap servers ("host:port") of the session's Kafka broker."""
    return _kafka_session.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_broker(_kafka_session: KafkaSession) -> LocalKafka | None:
    """The local broker object (restart/kill-able), or None for external/container brokers."""
    return _kafka_session.broker


@pytest.fixture
def kafka_topic_prefix() -> str:
    """A unique topic-name prefix for one test, e.g. ``pwtest-1a2b3c4d``."""
    return f"pwtest-{uuid.uuid4().hex[:8]}"
