"""Run a real single-node Apache Kafka broker (KRaft mode) locally, without Docker.

The broker jars (``org.apache.kafka:kafka_2.13`` plus its runtime dependencies
and ``slf4j-simple`` for logging) are fetched once from Maven Central with
``mvn`` into a cache folder, then the broker runs as a plain ``java`` child
process on free loopback ports.

Requirements: Java 17+ (``$JAVA_HOME/bin/java`` or ``java`` on ``PATH``) and,
for the one-time fetch only, Maven (``mvn`` on ``PATH``).

Cache folder: ``$PYWORKFLOW_KAFKA_HOME`` if set, else
``~/.cache/pyworkflow/kafka-<version>``; the jars live in its ``libs/``
sub-folder.

Command line::

    python -m pyworkflow.testing kafka fetch            # download the jars only
    python -m pyworkflow.testing kafka run [--port N]   # run a broker until Ctrl-C

Python::

    from pyworkflow.testing import LocalKafka

    with LocalKafka() as kafka:
        print(kafka.bootstrap_servers)  # "127.0.0.1:PORT"
        kafka.restart()                 # same ports, same data

This module only uses the standard library.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, NoReturn

__all__ = [
    "KAFKA_VERSION",
    "JarFetchError",
    "KafkaLocalError",
    "KafkaStartError",
    "LocalKafka",
    "ensure_jars",
    "jars_cached",
    "kafka_home",
    "main",
]

KAFKA_VERSION = "3.9.1"
SCALA_BINARY_VERSION = "2.13"
# Kafka 3.9.1 depends on slf4j-api 1.7.36 (checked with `mvn dependency:tree`);
# the binding must be from the same 1.7.x line (2.0.x bindings are not found
# by a 1.7 API and the broker would log nothing).
SLF4J_VERSION = "1.7.36"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", f"kafka_{SCALA_BINARY_VERSION}", KAFKA_VERSION),
    ("org.slf4j", "slf4j-simple", SLF4J_VERSION),
)

HOME_ENV = "PYWORKFLOW_KAFKA_HOME"
MARKER_NAME = ".pyworkflow-fetch-complete"
STARTED_MESSAGE = "Kafka Server started"
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    # C1 only: ~0.5 s faster (re)start measured on a 2-core machine; test
    # workloads never get hot enough to benefit from C2.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
    "-Dorg.slf4j.simpleLogger.logFile=System.out",
)
LOG_TAIL_LINES = 25
LOG_ERROR_LINES = 8
PORT_IN_USE_MESSAGE = "Address already in use"
# Auto-picked ports can be grabbed by another process between the pick and the
# JVM's bind; the first start then retries on fresh ports.
AUTO_PORT_ATTEMPTS = 3

log = logging.getLogger("pyworkflow.kafka_local")


class KafkaLocalError(RuntimeError):
    """Base class for every error raised by this module."""


class JarFetchError(KafkaLocalError):
    """The Kafka jars could not be downloaded with Maven."""


class KafkaStartError(KafkaLocalError):
    """The broker process did not start or did not become ready in time."""


class PortInUseError(KafkaStartError):
    """The broker exited because one of its ports was already taken."""


# --------------------------------------------------------------------------
# Jar fetching
# --------------------------------------------------------------------------


def kafka_home() -> Path:
    """Return the cache folder holding ``libs/`` (honours ``$PYWORKFLOW_KAFKA_HOME``)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "pyworkflow" / f"kafka-{KAFKA_VERSION}"


def _marker_text() -> str:
    return "".join(f"{group}:{artifact}:{version}\n" for group, artifact, version in ARTIFACTS)


def _is_complete(libs: Path) -> bool:
    marker = libs / MARKER_NAME
    try:
        return marker.read_text(encoding="utf-8") == _marker_text()
    except OSError:
        return False


def _render_pom() -> str:
    deps = "\n".join(
        "    <dependency>"
        f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
        for group, artifact, version in ARTIFACTS
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.pyworkflow.tools</groupId>
  <artifactId>kafka-local-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _find_executable(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise JarFetchError(f"`{name}` was not found on PATH. {hint}")
    return found


def _maven_command(pom: Path, output_dir: Path) -> list[str]:
    mvn = _find_executable(
        "mvn",
        "Maven is needed once to download the Kafka jars: install it "
        "(e.g. `apt-get install maven`) or copy an already filled "
        f"libs/ folder into {kafka_home()}.",
    )
    return [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]


def _run_maven(staging: Path) -> None:
    pom = staging / "pom.xml"
    pom.write_text(_render_pom(), encoding="utf-8")
    libs = staging / "libs"
    cmd = _maven_command(pom, libs)
    log.info("fetching Kafka %s jars with: %s", KAFKA_VERSION, " ".join(cmd))
    proc = subprocess.run(cmd, cwd=staging, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        tail = "\n".join(output[-LOG_TAIL_LINES:])
        raise JarFetchError(
            f"Maven failed (exit code {proc.returncode}) while downloading the Kafka "
            f"{KAFKA_VERSION} jars. Check network access to Maven Central (or your "
            f"~/.m2/settings.xml mirror). Command: {' '.join(cmd)}\n{tail}"
        )
    if not any(libs.glob(f"kafka_{SCALA_BINARY_VERSION}-{KAFKA_VERSION}.jar")):
        raise JarFetchError(f"Maven succeeded but no Kafka jar was copied into {libs}.")
    (libs / MARKER_NAME).write_text(_marker_text(), encoding="utf-8")


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` so concurrent fetches (e.g. xdist) do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def jars_cached() -> bool:
    """True if the broker jars are already in the cache (``ensure_jars()`` would not fetch)."""
    return _is_complete(kafka_home() / "libs")


def ensure_jars() -> Path:
    """Download the broker jars once and return the ``libs`` folder.

    Idempotent: when the marker file written after a successful copy is
    present (and names the same artifacts), nothing is downloaded.
    """
    home = kafka_home()
    libs = home / "libs"
    if _is_complete(libs):
        return libs
    with _exclusive_lock(home / ".fetch.lock"):
        if _is_complete(libs):  # another process finished while we waited
            return libs
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=home) as tmp:
            staging = Path(tmp)
            _run_maven(staging)
            if libs.exists():
                shutil.rmtree(libs)
            os.replace(staging / "libs", libs)
    log.info("Kafka jars ready in %s", libs)
    return libs


# --------------------------------------------------------------------------
# Broker configuration
# --------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def random_cluster_id() -> str:
    """Return a Kafka cluster id: a base64url 16-byte UUID without padding.

    Mirrors ``org.apache.kafka.common.Uuid.randomUuid()``, which never returns
    an id starting with ``-`` (it would look like a command-line flag).
    """
    while True:
        encoded = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not encoded.startswith("-"):
            return encoded


@dataclass(frozen=True)
class BrokerConfig:
    """Everything needed to render ``server.properties`` for a one-node KRaft cluster."""

    host: str
    port: int
    controller_port: int
    log_dir: Path

    def properties(self) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            # 1 instead of 50/50: creating the internal topics is then instant.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (SIGKILL) the restarted broker cannot register until
            # the previous registration's session expires (default 9 s).
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "168",
        }

    def render(self) -> str:
        lines = ["# Generated by pyworkflow.testing (LocalKafka)"]
        lines += [f"{key}={_escape_property(value)}" for key, value in self.properties().items()]
        return "\n".join(lines) + "\n"


def _escape_property(value: str) -> str:
    """Escape a value for a Java ``.properties`` file (backslashes, e.g. Windows paths)."""
    return value.replace("\\", "\\\\")


def find_java() -> str:
    """Return the ``java`` executable, preferring ``$JAVA_HOME``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaStartError(
            "`java` was not found (neither $JAVA_HOME/bin/java nor on PATH). "
            "Install a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`."
        )
    return found


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# Readiness probe
# --------------------------------------------------------------------------

_API_VERSIONS_KEY = 18


def _api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send an ApiVersions v0 request and return True if the broker answers without error."""
    client_id = b"pyworkflow-kafka-local"
    correlation_id = 0x5057
    header = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id))
    payload = header + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            body = _recv_exactly(sock, size)
    except OSError:
        return False
    if len(body) < 6:
        return False
    got_correlation, error_code = struct.unpack(">ih", body[:6])
    return bool(got_correlation == correlation_id and error_code == 0)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _log_contains_since(path: Path, offset: int, needle: str) -> bool:
    return needle in _read_since(path, offset)


def _error_lines(text: str, limit: int = LOG_ERROR_LINES) -> str:
    """The first ERROR/FATAL log lines and ``Caused by:`` lines, which name the real cause."""
    wanted = [
        line
        for line in text.splitlines()
        if " ERROR " in line or " FATAL " in line or line.startswith("Caused by:")
    ]
    return "\n".join(wanted[:limit]) or "(none)"


# --------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------


class LocalKafka:
    """A single-node KRaft Kafka broker running as a local ``java`` process.

    Ports are chosen on the first :meth:`start` (or given explicitly) and kept
    for the object's lifetime, as is the data directory, so :meth:`restart`
    and ``kill(); start()`` bring the same broker back with its data.
    """

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        host: str = "127.0.0.1",
        data_dir: Path | str | None = None,
        jvm_opts: Sequence[str] = DEFAULT_JVM_OPTS,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        self.host = host
        self._port = port
        self._controller_port = controller_port
        self._auto_ports = port is None and controller_port is None
        self._started_once = False
        self._owns_data_dir = data_dir is None
        self._data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.jvm_opts = tuple(jvm_opts)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._atexit_registered = False

    # ----- public properties ------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise KafkaLocalError("the broker port is chosen on start(); call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise KafkaLocalError("the data directory is created on start(); call start() first")
        return self._data_dir

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ----- lifecycle ----------------------------------------------------------

    def start(self) -> LocalKafka:
        """Start the broker (formatting storage on first use) and wait until it is ready."""
        if self.is_running():
            return self
        libs = ensure_jars()
        java = find_java()
        retry_ports = self._auto_ports and not self._started_once
        attempts = AUTO_PORT_ATTEMPTS if retry_ports else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(java, libs)
            except PortInUseError:
                if attempt == attempts:
                    raise
                log.warning("port taken while starting %s; retrying on new ports", self)
                self._forget_auto_ports()
            else:
                break
        self._started_once = True
        return self

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL it if still alive after ``timeout``."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                log.warning("broker pid %d ignored SIGTERM; sending SIGKILL", process.pid)
                process.kill()
                process.wait()
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the broker immediately (simulates a crash); data stays on disk."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._forget_process()

    def restart(self) -> LocalKafka:
        """Stop cleanly, then start again on the same ports with the same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and delete its data directory if this object created it."""
        self.stop()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<LocalKafka {self.host}:{self._port} {state} pid={self.pid}>"

    # ----- internals ------------------------------------------------------------

    def _start_once(self, java: str, libs: Path) -> None:
        config = self._prepare_config()
        config_path = self.data_dir / "server.properties"
        config_path.write_text(config.render(), encoding="utf-8")
        self._format_storage_once(java, libs, config_path)
        self._spawn(java, libs, config_path)

    def _forget_auto_ports(self) -> None:
        """Before the first successful start only: drop auto-picked ports and half-made storage."""
        self._port = None
        self._controller_port = None
        shutil.rmtree(self.data_dir / "logs", ignore_errors=True)

    def _prepare_config(self) -> BrokerConfig:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="pyworkflow-kafka-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port(self.host)
        if self._controller_port is None:
            self._controller_port = free_port(self.host)
            while self._controller_port == self._port:
                self._controller_port = free_port(self.host)
        return BrokerConfig(self.host, self._port, self._controller_port, self.data_dir / "logs")

    def _java_command(self, java: str, libs: Path, main_class: str, *args: str) -> list[str]:
        # The JVM expands "dir/*" itself; no shell is involved.
        return [java, *self.jvm_opts, "-cp", str(libs / "*"), main_class, *args]

    def _format_storage_once(self, java: str, libs: Path, config_path: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cmd = self._java_command(
            java,
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            random_cluster_id(),
            "-c",
            str(config_path),
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise KafkaStartError(
                f"formatting the KRaft storage in {self.data_dir / 'logs'} failed "
                f"(exit code {proc.returncode}). Command: {' '.join(cmd)}\n{output}"
            )

    def _spawn(self, java: str, libs: Path, config_path: Path) -> None:
        log_path = self.log_file
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        handle = log_path.open("ab")
        cmd = self._java_command(java, libs, "kafka.Kafka", str(config_path))
        log.info("starting Kafka broker on %s (log: %s)", self.bootstrap_servers, log_path)
        started = time.monotonic()
        self._process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )
        self._log_handle = handle
        self._register_atexit()
        try:
            self._wait_until_ready(log_offset, started)
        except BaseException:
            self.kill()
            raise
        log.info(
            "Kafka broker ready on %s in %.1fs", self.bootstrap_servers, time.monotonic() - started
        )

    def _wait_until_ready(self, log_offset: int, started: float) -> None:
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                self._raise_exited(log_offset, code)
            if _log_contains_since(self.log_file, log_offset, STARTED_MESSAGE) and _api_versions_ok(
                self.host, self.port
            ):
                return
            time.sleep(0.2)
        raise KafkaStartError(
            self._failure_message(
                f"the broker was not ready after {self.start_timeout:g}s", log_offset
            )
        )

    def _raise_exited(self, log_offset: int, code: int | None) -> NoReturn:
        what = f"the broker process exited (code {code})"
        if PORT_IN_USE_MESSAGE in _read_since(self.log_file, log_offset):
            ports = f"{self._port} or {self._controller_port}"
            message = self._failure_message(f"{what}: port {ports} is already in use", log_offset)
            raise PortInUseError(message)
        raise KafkaStartError(self._failure_message(what, log_offset))

    def _failure_message(self, what: str, log_offset: int = 0) -> str:
        return (
            f"Local Kafka broker on {self.host}:{self._port} failed to start: {what}. "
            f"Check that Java 17+ works and the ports are free; broker log: {self.log_file}\n"
            f"--- first error lines ---\n"
            f"{_error_lines(_read_since(self.log_file, log_offset))}\n"
            f"--- last {LOG_TAIL_LINES} lines of the broker log ---\n{_tail(self.log_file)}"
        )

    def _forget_process(self) -> None:
        self._process = None
        handle = self._log_handle
        self._log_handle = None
        if handle is not None:
            handle.close()

    def _register_atexit(self) -> None:
        # Safety net: never leave an orphan broker behind if the caller forgets stop().
        if not self._atexit_registered:
            atexit.register(self.kill)
            self._atexit_registered = True


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _cmd_fetch(_args: argparse.Namespace) -> int:
    started = time.monotonic()
    libs = ensure_jars()
    jars = sorted(libs.glob("*.jar"))
    print(f"{len(jars)} jars in {libs} ({time.monotonic() - started:.1f}s)")
    return 0


def _wait_for_signal(broker: LocalKafka) -> int:
    stop_requested = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping the broker", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    while not stop_requested.wait(0.5):
        if not broker.is_running():
            print(
                f"Kafka broker exited unexpectedly; log:\n{_tail(broker.log_file)}", file=sys.stderr
            )
            return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    broker = LocalKafka(
        port=args.port,
        controller_port=args.controller_port,
        data_dir=args.data_dir,
        start_timeout=args.timeout,
    )
    try:
        broker.start()
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        return _wait_for_signal(broker)
    finally:
        broker.close()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyworkflow.testing kafka",
        description=f"Local Apache Kafka {KAFKA_VERSION} broker (KRaft, no Docker).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the broker jars into the cache and exit")
    fetch.set_defaults(handler=_cmd_fetch)
    run = sub.add_parser("run", help="run a broker until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    run.add_argument("--controller-port", type=int, default=None, help="KRaft controller port")
    run.add_argument("--data-dir", type=Path, default=None, help="keep data here (default: temp)")
    run.add_argument(
        "--timeout", type=float, default=DEFAULT_START_TIMEOUT, help="start timeout (s)"
    )
    run.set_defaults(handler=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code

