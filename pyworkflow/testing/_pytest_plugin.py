"""The pytest plugin behind ``pyworkflow.testing.pytest_plugin``: a real Kafka broker per session.

Nothing here starts, probes or imports Docker until a test requests ``kafka_bootstrap`` or
``kafka_broker``; loading the plugin costs one import of this module (pytest and the standard
library, plus ``pyworkflow.testing``).

Broker selection, first match wins:

1. ``$KAFKA_BOOTSTRAP_SERVERS``: an existing broker, never stopped by the plugin;
2. a Docker engine answers: an ``apache/kafka`` container (the same Kafka version as
   ``LocalKafka``) through testcontainers;
3. ``LocalKafka``: a ``java`` child process, its jars fetched with Maven on first use.

``$PYWORKFLOW_KAFKA_BACKEND=local|testcontainers`` forces 3 or 2 (default ``auto``: in auto
mode a container that fails to start falls back to 3, with a warning);
``$PYWORKFLOW_KAFKA_IMAGE`` overrides the image (an ``apache/kafka`` or
``apache/kafka-native`` one: the container is configured through that image's environment).

No broker: the tests that need one are skipped with the reason, except with ``CI=true``, where
they fail.
"""

from __future__ import annotations

import gc
import io
import os
import tarfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import pytest

from . import _kafka_local

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from ._kafka_local import LocalKafka

__all__ = [
    "BrokerUnavailable",
    "KafkaSession",
    "kafka_bootstrap",
    "kafka_broker",
    "kafka_topic_prefix",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_terminal_summary",
    "select_provider",
]

KAFKA_MARKER = "kafka"
KAFKA_FIXTURES = frozenset({"kafka_bootstrap", "kafka_broker"})
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
BACKEND_ENV = "PYWORKFLOW_KAFKA_BACKEND"
IMAGE_ENV = "PYWORKFLOW_KAFKA_IMAGE"
DEFAULT_IMAGE = f"apache/kafka:{_kafka_local.KAFKA_VERSION}"
DOCKER_PING_TIMEOUT_S = 3
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"

# The container: clients reach PLAINTEXT on the mapped port; BROKER is the inter-broker
# listener inside the container network; CONTROLLER is KRaft's.
CONTAINER_PORT = 9092
CONTAINER_BROKER_PORT = 9093
CONTAINER_CONTROLLER_PORT = 9094
CONTAINER_LOG_DIR = "/tmp/kraft-combined-logs"
# The advertised listener names the mapped host port, known only once the container runs, so
# the container waits for a start script that exports it, then runs the image's own entry point.
START_SCRIPT = "/tmp/pyworkflow-kafka-start.sh"
START_READY_FLAG = "/tmp/pyworkflow-kafka-start.ready"
IMAGE_RUN_SCRIPT = "/etc/kafka/docker/run"
CONTAINER_START_TIMEOUT_S = 90.0
CONTAINER_LOG_TAIL_LINES = 25

Provider = Literal["external", "testcontainers", "local"]


@dataclass(frozen=True)
class KafkaSession:
    """What the session's broker fixture hands out."""

    bootstrap_servers: str
    broker: LocalKafka | None
    source: str


class BrokerUnavailable(Exception):
    """No Kafka broker could be provided; the message says why and what to do."""


_SESSION_KEY = pytest.StashKey[KafkaSession]()


# --------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{KAFKA_MARKER}: needs a real Kafka broker (the kafka_bootstrap fixture of "
        "pyworkflow.testing.pytest_plugin)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the broker fixtures ``kafka`` (``-m "not kafka"`` skips them)."""
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        if KAFKA_FIXTURES.intersection(fixturenames):
            item.add_marker(KAFKA_MARKER)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    session = terminalreporter.config.stash.get(_SESSION_KEY, None)
    if session is not None:
        terminalreporter.write_line(f"kafka broker: {session.source}")


# --------------------------------------------------------------------------
# Which broker
# --------------------------------------------------------------------------


def _docker_socket_missing() -> bool:
    """Cheap pre-check: the Docker host testcontainers would use is a unix socket that is absent."""
    try:
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return True
    host = get_docker_host() or f"unix://{DEFAULT_DOCKER_SOCKET}"
    return host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists()


def docker_engine_answers() -> bool:
    """True if testcontainers is installed and a Docker engine answers a ping within seconds."""
    if _docker_socket_missing():
        return False
    try:
        from docker.errors import DockerException
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return False
    # docker.from_env() leaks its HTTP socket when the daemon does not answer; keep the
    # ResourceWarning from surfacing later as an unraisable-exception error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            # testcontainers' wrapper resolves the host as the container will
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


def select_provider() -> Provider:
    """``$KAFKA_BOOTSTRAP_SERVERS`` > ``$PYWORKFLOW_KAFKA_BACKEND`` > Docker answers > local."""
    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        return "external"
    backend = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if backend == "local":
        return "local"
    if backend == "testcontainers":
        return "testcontainers"
    if backend != "auto":
        raise BrokerUnavailable(
            f"{BACKEND_ENV}={backend!r}: expected auto, local or testcontainers"
        )
    return "testcontainers" if docker_engine_answers() else "local"


def _backend_forced() -> bool:
    return os.environ.get(BACKEND_ENV, "auto").strip().lower() not in ("", "auto")


def _open_session(stack: ExitStack) -> KafkaSession:
    provider = select_provider()
    if provider == "external":
        servers = os.environ[BOOTSTRAP_ENV].strip()
        return KafkaSession(servers, None, f"{servers} (from {BOOTSTRAP_ENV})")
    if provider == "local":
        return _start_local(stack)
    try:
        return _start_container(stack)
    except BrokerUnavailable as exc:
        if _backend_forced():
            raise
        warnings.warn(
            f"{exc}\nFalling back to the local java broker (pyworkflow.testing.LocalKafka); "
            f"set {BACKEND_ENV}=local to skip the container.",
            stacklevel=1,
        )
        return _start_local(stack)


# --------------------------------------------------------------------------
# The local java broker
# --------------------------------------------------------------------------


def _start_local(stack: ExitStack) -> KafkaSession:
    """``LocalKafka``, fetching its jars first if this machine has none (needs Maven once)."""
    fetched = ""
    if not _kafka_local.jars_cached():
        started = time.monotonic()
        try:
            libs = _kafka_local.ensure_jars()
        except _kafka_local.JarFetchError as exc:
            raise BrokerUnavailable(
                f"fetching the Kafka {_kafka_local.KAFKA_VERSION} jars for the local broker "
                f"failed: {exc}\nHint: the first local broker needs Maven and Java 17 (or a "
                f"Docker engine for a container, or {BOOTSTRAP_ENV} set to an existing broker)."
            ) from exc
        fetched = f"; jars fetched into {libs} in {time.monotonic() - started:.1f}s"
    broker = _kafka_local.LocalKafka()
    stack.callback(broker.close)
    try:
        broker.start()
    except _kafka_local.KafkaLocalError as exc:
        raise BrokerUnavailable(
            f"local Kafka broker (pyworkflow.testing.LocalKafka) failed: {exc}\n"
            f"Hint: it needs Java 17+; or set {BOOTSTRAP_ENV} to an existing broker."
        ) from exc
    return KafkaSession(
        broker.bootstrap_servers,
        broker,
        f"local java broker {broker.bootstrap_servers} (Kafka {_kafka_local.KAFKA_VERSION}, "
        f"pid {broker.pid}{fetched})",
    )


# --------------------------------------------------------------------------
# The apache/kafka container
# --------------------------------------------------------------------------


def _env_name(prop: str) -> str:
    """A broker property as the apache/kafka image's variable: ``a.b`` -> ``KAFKA_A_B``."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def container_environment(cluster_id: str) -> dict[str, str]:
    """The container's environment: ``LocalKafka``'s broker settings, with container listeners.

    ``advertised.listeners`` is absent: the start script exports it once the port is mapped.
    """
    props = _kafka_local.BrokerConfig(
        host="localhost",
        port=CONTAINER_PORT,
        controller_port=CONTAINER_CONTROLLER_PORT,
        log_dir=Path(CONTAINER_LOG_DIR),
    ).properties()
    del props["advertised.listeners"]
    props.update(
        {
            "listeners": (
                f"PLAINTEXT://0.0.0.0:{CONTAINER_PORT},BROKER://0.0.0.0:{CONTAINER_BROKER_PORT},"
                f"CONTROLLER://0.0.0.0:{CONTAINER_CONTROLLER_PORT}"
            ),
            "listener.security.protocol.map": (
                "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": "BROKER",
            "log.dirs": CONTAINER_LOG_DIR,
        }
    )
    env = {_env_name(key): value for key, value in props.items()}
    env["CLUSTER_ID"] = cluster_id
    return env


def container_start_script(host: str, port: int) -> str:
    """The script the container runs once the mapped ``host:port`` of its listener is known."""
    advertised = f"PLAINTEXT://{host}:{port},BROKER://$(hostname):{CONTAINER_BROKER_PORT}"
    return f'#!/bin/sh\nexport KAFKA_ADVERTISED_LISTENERS="{advertised}"\nexec {IMAGE_RUN_SCRIPT}\n'


def _container_command() -> list[str]:
    return [
        "sh",
        "-c",
        f"while [ ! -f {START_READY_FLAG} ]; do sleep 0.1; done; exec sh {START_SCRIPT}",
    ]


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = 0o755
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _container_logs(container: DockerContainer) -> str:
    try:
        stdout, stderr = container.get_logs()
    except Exception:  # docker raises many error types; the logs only decorate an error
        return ""
    return (stdout + stderr).decode("utf-8", errors="replace")


def _wait_until_container_ready(container: DockerContainer, host: str, port: int) -> None:
    deadline = time.monotonic() + CONTAINER_START_TIMEOUT_S
    wrapped = container.get_wrapped_container()  # docker-py's Container
    while time.monotonic() < deadline:
        wrapped.reload()
        if wrapped.status not in ("created", "running"):
            raise BrokerUnavailable(f"the container exited (status {wrapped.status!r})")
        if _kafka_local.STARTED_MESSAGE in _container_logs(container) and (
            _kafka_local._api_versions_ok(host, port)
        ):
            return
        time.sleep(0.25)
    raise BrokerUnavailable(f"the broker was not ready after {CONTAINER_START_TIMEOUT_S:g}s")


def _start_container(stack: ExitStack) -> KafkaSession:
    """An ``apache/kafka`` container in KRaft mode, through testcontainers' ``DockerContainer``.

    testcontainers' own ``KafkaContainer`` drives the Confluent image's scripts
    (``/etc/confluent/docker/...``) and rejects tags below 7.0.0 in KRaft mode, so it can't run
    ``apache/kafka``; this configures the Apache image through its environment instead.
    """
    image = os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_IMAGE
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        raise BrokerUnavailable(
            f"a Kafka container needs testcontainers (pip install 'testcontainers>=4.7'): {exc}"
        ) from exc
    container: DockerContainer | None = None
    try:
        container = DockerContainer(image)
        container.with_exposed_ports(CONTAINER_PORT)
        for key, value in container_environment(_kafka_local.random_cluster_id()).items():
            container.with_env(key, value)
        container.with_command(_container_command())
        container.start()
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(CONTAINER_PORT))
        wrapped = container.get_wrapped_container()
        # Two archives: the flag appears only once the script is complete.
        wrapped.put_archive("/", _tar({START_SCRIPT: container_start_script(host, port).encode()}))
        wrapped.put_archive("/", _tar({START_READY_FLAG: b""}))
        _wait_until_container_ready(container, host, port)
    except Exception as exc:  # docker/testcontainers raise many unrelated error types
        logs = "" if container is None else _container_logs(container)
        tail = "\n".join(logs.splitlines()[-CONTAINER_LOG_TAIL_LINES:])
        if container is not None:
            _stop_quietly(container)
        raise BrokerUnavailable(
            f"Kafka container {image!r} (testcontainers) failed to start: {exc!r}"
            + (f"\n--- last lines of the container log ---\n{tail}" if tail else "")
        ) from exc
    stack.callback(_stop_quietly, container)
    return KafkaSession(f"{host}:{port}", None, f"container {image} at {host}:{port}")


def _stop_quietly(container: DockerContainer) -> None:
    try:
        container.stop()
    except Exception as exc:  # the session is over; a failed removal must not fail it
        warnings.warn(f"removing the Kafka container failed: {exc!r}", stacklevel=1)


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


def _unavailable(reason: str) -> NoReturn:
    message = f"No Kafka broker for this test: {reason}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message}\n(CI=true: a missing broker fails the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _kafka_session(request: pytest.FixtureRequest) -> Iterator[KafkaSession]:
    with ExitStack() as stack:
        try:
            session = _open_session(stack)
        except BrokerUnavailable as exc:
            _unavailable(str(exc))
        request.config.stash[_SESSION_KEY] = session
        yield session


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_session: KafkaSession) -> str:
    """Bootstrap servers (``"host:port"``) of the session's Kafka broker."""
    return _kafka_session.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_broker(_kafka_session: KafkaSession) -> LocalKafka | None:
    """The ``LocalKafka`` (``restart()``, ``kill()``) when the plugin started one, else None."""
    return _kafka_session.broker


@pytest.fixture
def kafka_topic_prefix() -> str:
    """A unique topic-name prefix for one test, e.g. ``pwtest-1a2b3c4d``."""
    return f"pwtest-{uuid.uuid4().hex[:8]}"
