"""The Kafka fixtures of ``pyworkflow.testing.pytest_plugin``.

End-to-end checks against the session's real broker (sync tests driving aiokafka with
``asyncio.run``, so they do not depend on any async pytest plugin), then the plugin's broker
selection, its container path (against a fake ``DockerContainer``: no Docker engine needed) and
its behaviour in isolated pytest sessions (``pytester``).
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from pyworkflow.testing import _kafka_local, _pytest_plugin
from pyworkflow.testing._pytest_plugin import BrokerUnavailable, KafkaSession

if TYPE_CHECKING:
    from pyworkflow.testing._kafka_local import LocalKafka

CONSUME_TIMEOUT_S = 30.0


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create ``name`` and fail with the broker's error if any topic was rejected."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=10_000,
        )
    finally:
        await admin.close()
    # CreateTopicsResponse v0..v3: topic_errors = [(topic, error_code[, error_message]), ...]
    for topic, error_code, *rest in response.topic_errors:
        if error_code != 0:
            raise AssertionError(
                f"create_topics({topic!r}) failed: {for_code(error_code).__name__} {rest}"
            )


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    """Send ``values`` one by one (idempotent, acks=all) and return their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        offsets = []
        for value in values:
            metadata = await producer.send_and_wait(topic, value=value, key=b"k")
            offsets.append(metadata.offset)
        return offsets
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read the first ``count`` values of ``topic`` from the beginning (no consumer group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(record.value for record in records if record.value is not None)
    finally:
        await consumer.stop()
    return values


def test_create_produce_consume_roundtrip(kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
    topic = f"{kafka_topic_prefix}-roundtrip"
    values = [b"one", b"two", b"three"]

    async def scenario() -> tuple[list[int], list[bytes]]:
        await create_topic(kafka_bootstrap, topic)
        offsets = await produce(kafka_bootstrap, topic, values)
        return offsets, await consume(kafka_bootstrap, topic, len(values))

    offsets, consumed = asyncio.run(scenario())

    assert offsets == [0, 1, 2]
    assert consumed == values


def test_creating_an_existing_topic_reports_an_error(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}-dup"
    asyncio.run(create_topic(kafka_bootstrap, topic))

    with pytest.raises(AssertionError, match="TopicAlreadyExistsError"):
        asyncio.run(create_topic(kafka_bootstrap, topic))


def test_topic_prefix_has_expected_shape(kafka_topic_prefix: str) -> None:
    assert kafka_topic_prefix.startswith("pwtest-")
    assert len(kafka_topic_prefix) == len("pwtest-") + 8


@pytest.mark.parametrize("how", ["graceful", "crash"])
def test_broker_restart_loses_nothing(
    kafka_bootstrap: str, kafka_broker: LocalKafka | None, kafka_topic_prefix: str, how: str
) -> None:
    if kafka_broker is None:
        pytest.skip("restart needs the local broker (not an external/container one)")
    topic = f"{kafka_topic_prefix}-restart-{how}"
    before = [b"before-1", b"before-2", b"before-3"]
    after = [b"after-1"]
    asyncio.run(create_topic(kafka_bootstrap, topic))
    assert asyncio.run(produce(kafka_bootstrap, topic, before)) == [0, 1, 2]
    old_pid = kafka_broker.pid

    if how == "graceful":
        kafka_broker.restart()
    else:
        kafka_broker.kill()
        assert not kafka_broker.is_running()
        kafka_broker.start()

    assert kafka_broker.pid != old_pid
    assert kafka_broker.bootstrap_servers == kafka_bootstrap
    assert asyncio.run(produce(kafka_bootstrap, topic, after)) == [3]
    assert asyncio.run(consume(kafka_bootstrap, topic, 4)) == before + after


def test_jar_fetch_is_skipped_once_cached(
    kafka_broker: LocalKafka | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kafka_broker is None:
        pytest.skip("only meaningful when the local broker (and its jar cache) is used")

    def maven_must_not_run(staging: Path) -> None:
        raise AssertionError(
            f"Maven was invoked again (staging {staging}) although jars are cached"
        )

    monkeypatch.setattr(_kafka_local, "_run_maven", maven_must_not_run)
    assert _kafka_local.jars_cached()
    libs = _kafka_local.ensure_jars()

    assert (libs / _kafka_local.MARKER_NAME).is_file()
    assert (libs / f"kafka_2.13-{_kafka_local.KAFKA_VERSION}.jar").is_file()


# --------------------------------------------------------------------------
# Broker selection: $KAFKA_BOOTSTRAP_SERVERS > $PYWORKFLOW_KAFKA_BACKEND > Docker > local
# --------------------------------------------------------------------------


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No broker-selection variables set, and Docker detection that fails the test if used."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "PYWORKFLOW_KAFKA_BACKEND", "PYWORKFLOW_KAFKA_IMAGE"):
        monkeypatch.delenv(name, raising=False)

    def docker_not_expected() -> bool:
        raise AssertionError("Docker was probed although the choice was already made")

    monkeypatch.setattr(_pytest_plugin, "docker_engine_answers", docker_not_expected)
    return monkeypatch


def test_an_external_broker_wins_over_everything(plain_env: pytest.MonkeyPatch) -> None:
    plain_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    plain_env.setenv("PYWORKFLOW_KAFKA_BACKEND", "testcontainers")
    assert _pytest_plugin.select_provider() == "external"


@pytest.mark.parametrize("forced", ["local", "testcontainers", " Local "])
def test_the_backend_variable_forces_a_provider(plain_env: pytest.MonkeyPatch, forced: str) -> None:
    plain_env.setenv("PYWORKFLOW_KAFKA_BACKEND", forced)
    assert _pytest_plugin.select_provider() == forced.strip().lower()


@pytest.mark.parametrize(("docker", "expected"), [(True, "testcontainers"), (False, "local")])
def test_auto_picks_a_container_only_when_docker_answers(
    plain_env: pytest.MonkeyPatch, docker: bool, expected: str
) -> None:
    plain_env.setenv("PYWORKFLOW_KAFKA_BACKEND", "auto")
    plain_env.setattr(_pytest_plugin, "docker_engine_answers", lambda: docker)
    assert _pytest_plugin.select_provider() == expected


def test_an_unknown_backend_is_reported(plain_env: pytest.MonkeyPatch) -> None:
    plain_env.setenv("PYWORKFLOW_KAFKA_BACKEND", "docker")
    with pytest.raises(BrokerUnavailable, match="expected auto, local or testcontainers"):
        _pytest_plugin.select_provider()


def test_no_docker_socket_means_no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    started = time.monotonic()
    assert not _pytest_plugin.docker_engine_answers()
    assert time.monotonic() - started < 2


def _fake_session(source: str) -> KafkaSession:
    return KafkaSession(f"{source}:9092", None, source)


def test_auto_falls_back_to_the_local_broker_when_the_container_fails(
    plain_env: pytest.MonkeyPatch,
) -> None:
    plain_env.setattr(_pytest_plugin, "docker_engine_answers", lambda: True)

    def container_fails(stack: ExitStack) -> KafkaSession:
        raise BrokerUnavailable("image pull denied")

    plain_env.setattr(_pytest_plugin, "_start_container", container_fails)
    plain_env.setattr(_pytest_plugin, "_start_local", lambda stack: _fake_session("local"))
    with ExitStack() as stack, pytest.warns(UserWarning, match="image pull denied"):
        assert _pytest_plugin._open_session(stack).source == "local"


def test_a_forced_container_does_not_fall_back(plain_env: pytest.MonkeyPatch) -> None:
    plain_env.setenv("PYWORKFLOW_KAFKA_BACKEND", "testcontainers")

    def container_fails(stack: ExitStack) -> KafkaSession:
        raise BrokerUnavailable("image pull denied")

    def local_not_expected(stack: ExitStack) -> KafkaSession:
        raise AssertionError("fell back to the local broker although the container was forced")

    plain_env.setattr(_pytest_plugin, "_start_container", container_fails)
    plain_env.setattr(_pytest_plugin, "_start_local", local_not_expected)
    with ExitStack() as stack, pytest.raises(BrokerUnavailable, match="image pull denied"):
        _pytest_plugin._open_session(stack)


# --------------------------------------------------------------------------
# The local provider fetches the jars itself (`just test` runs no `kafka fetch` first)
# --------------------------------------------------------------------------


class _FakeLocalKafka:
    started = False

    def __init__(self) -> None:
        self.bootstrap_servers = "127.0.0.1:1234"
        self.pid = 42

    def start(self) -> None:
        _FakeLocalKafka.started = True

    def close(self) -> None:
        pass


def test_the_local_provider_fetches_missing_jars_before_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(_kafka_local, "jars_cached", lambda: False)
    monkeypatch.setattr(
        _kafka_local, "ensure_jars", lambda: calls.append("fetch") or Path("/cache/libs")
    )
    monkeypatch.setattr(_kafka_local, "LocalKafka", _FakeLocalKafka)
    with ExitStack() as stack:
        session = _pytest_plugin._start_local(stack)
    assert calls == ["fetch"]
    assert _FakeLocalKafka.started
    assert "jars fetched into /cache/libs" in session.source


def test_a_failed_jar_fetch_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_maven() -> Path:
        raise _kafka_local.JarFetchError("`mvn` was not found on PATH.")

    monkeypatch.setattr(_kafka_local, "jars_cached", lambda: False)
    monkeypatch.setattr(_kafka_local, "ensure_jars", no_maven)
    with ExitStack() as stack, pytest.raises(BrokerUnavailable, match="needs Maven") as caught:
        _pytest_plugin._start_local(stack)
    assert "Docker engine" in str(caught.value)


# --------------------------------------------------------------------------
# The apache/kafka container, against a fake testcontainers DockerContainer
# --------------------------------------------------------------------------


class _FakeDockerContainer:
    """Records what the plugin asks of testcontainers' DockerContainer and docker-py's Container."""

    made: list[_FakeDockerContainer] = []
    exit_after_start = False

    def __init__(self, image: str) -> None:
        self.image = image
        self.env: dict[str, str] = {}
        self.ports: list[int] = []
        self.command: Any = None
        self.started = self.stopped = False
        self.archives: list[dict[str, bytes]] = []
        self.status = "running"
        _FakeDockerContainer.made.append(self)

    def with_exposed_ports(self, *ports: int) -> _FakeDockerContainer:
        self.ports.extend(ports)
        return self

    def with_env(self, key: str, value: str) -> _FakeDockerContainer:
        self.env[key] = value
        return self

    def with_command(self, command: Any) -> _FakeDockerContainer:
        self.command = command
        return self

    def start(self) -> _FakeDockerContainer:
        self.started = True
        return self

    def get_container_host_ip(self) -> str:
        return "dockerhost"

    def get_exposed_port(self, port: int) -> str:
        assert port == 9092
        return "32768"

    def get_wrapped_container(self) -> _FakeDockerContainer:
        return self

    # docker-py's Container
    def reload(self) -> None:
        if self.exit_after_start:
            self.status = "exited"

    def put_archive(self, path: str, data: bytes) -> bool:
        assert path == "/"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.archives.append(
                {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
            )
        return True

    def get_logs(self) -> tuple[bytes, bytes]:
        ready = len(self.archives) == 2
        return (b"[KafkaRaftServer nodeId=1] Kafka Server started\n" if ready else b"", b"")

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_docker(plain_env: pytest.MonkeyPatch) -> type[_FakeDockerContainer]:
    plain_env.setattr("testcontainers.core.container.DockerContainer", _FakeDockerContainer)
    plain_env.setattr(_kafka_local, "_api_versions_ok", lambda host, port: True)
    plain_env.setattr(_FakeDockerContainer, "made", [])
    return _FakeDockerContainer


def test_the_container_is_apache_kafka_in_kraft_mode(
    fake_docker: type[_FakeDockerContainer],
) -> None:
    with ExitStack() as stack:
        session = _pytest_plugin._start_container(stack)
        (container,) = fake_docker.made
        assert not container.stopped
    assert container.stopped
    assert container.image == f"apache/kafka:{_kafka_local.KAFKA_VERSION}" == "apache/kafka:3.9.1"
    assert session == KafkaSession(
        "dockerhost:32768", None, "container apache/kafka:3.9.1 at dockerhost:32768"
    )
    env = container.env
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9094"
    assert env["KAFKA_LISTENERS"] == (
        "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094"
    )
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "BROKER"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # as LocalKafka
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "KAFKA_ADVERTISED_LISTENERS" not in env  # exported by the start script
    assert len(env["CLUSTER_ID"]) == 22
    assert container.ports == [9092]
    # The container waits for the ready flag, which arrives after the complete script.
    assert "/tmp/pyworkflow-kafka-start.ready" in container.command[-1]
    script, flag = container.archives
    assert flag == {"tmp/pyworkflow-kafka-start.ready": b""}
    text = script["tmp/pyworkflow-kafka-start.sh"].decode()
    advertised = "PLAINTEXT://dockerhost:32768,BROKER://$(hostname):9093"
    assert f'export KAFKA_ADVERTISED_LISTENERS="{advertised}"' in text
    assert text.rstrip().endswith("exec /etc/kafka/docker/run")


def test_the_image_can_be_overridden(
    fake_docker: type[_FakeDockerContainer], plain_env: pytest.MonkeyPatch
) -> None:
    plain_env.setenv("PYWORKFLOW_KAFKA_IMAGE", "apache/kafka-native:3.9.1")
    with ExitStack() as stack:
        _pytest_plugin._start_container(stack)
    assert fake_docker.made[0].image == "apache/kafka-native:3.9.1"


def test_a_container_that_exits_is_removed_and_reported(
    fake_docker: type[_FakeDockerContainer], plain_env: pytest.MonkeyPatch
) -> None:
    plain_env.setattr(_FakeDockerContainer, "exit_after_start", True)
    with ExitStack() as stack, pytest.raises(BrokerUnavailable, match="exited"):
        _pytest_plugin._start_container(stack)
    assert fake_docker.made[0].stopped


# --------------------------------------------------------------------------
# The plugin in isolated pytest sessions, loaded as users load it
# --------------------------------------------------------------------------

USER_TESTS = """
import sys

def test_without_kafka():  # runs first: nothing has asked for a broker yet
    # Loading the plugin imports neither Docker nor testcontainers.
    assert "docker" not in sys.modules
    assert not any(name.startswith("testcontainers") for name in sys.modules)

def test_uses_the_broker(kafka_bootstrap, kafka_broker):
    assert kafka_bootstrap == "broker.example:9092"
    assert kafka_broker is None
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "PYWORKFLOW_KAFKA_BACKEND", "CI"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest('pytest_plugins = ["pyworkflow.testing.pytest_plugin"]')
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


def test_plugin_uses_an_external_broker_and_marks_its_tests(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "kafka broker: broker.example:9092 (from KAFKA_BOOTSTRAP_SERVERS)"]
    )

    deselected = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not kafka")
    deselected.assert_outcomes(passed=1, deselected=1)
    assert "kafka broker:" not in deselected.stdout.str()


def _no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A container is forced and no Docker engine can answer: the broker can't start."""
    monkeypatch.setenv("PYWORKFLOW_KAFKA_BACKEND", "testcontainers")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")


def test_plugin_skips_with_the_reason_when_no_broker_starts(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_broker(monkeypatch, tmp_path)
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED *No Kafka broker for this test: Kafka container 'apache/kafka:3.9.1'*"]
    )


def test_plugin_fails_the_run_in_ci_when_no_broker_starts(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_broker(monkeypatch, tmp_path)
    monkeypatch.setenv("CI", "true")
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*CI=true: a missing broker fails the run*"])
    assert result.ret != 0
