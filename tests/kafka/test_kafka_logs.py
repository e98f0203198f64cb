"""aiokafka's log records go through pyworkflow's logs: at the level ``configure()`` sets,
one line per message per interval (with a count), never one per reconnect attempt.

Unit tests of the relay, without a broker; ``test_kafka_outage`` counts the lines of a real
broker outage."""

from __future__ import annotations

import json
import logging
import threading

import aiokafka  # noqa: F401  (creates the library's loggers the relay attaches to)
import pytest

from pyworkflow import configure
from pyworkflow._log_relay import LibraryLogRelay
from pyworkflow._logging import FollowingLogger


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_relay(clock: FakeClock) -> LibraryLogRelay:
    log = FollowingLogger().bind(storage="kafka")
    return LibraryLogRelay(
        log, library="aiokafka", event="kafka_client_log", interval=30.0, clock=clock
    )


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_a_repeated_message_is_written_once_per_interval_with_a_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(log_format="json")
    clock = FakeClock()
    relay = make_relay(clock)
    conn = logging.getLogger("aiokafka.conn")
    relay.attach()
    try:
        for attempt in range(200):  # a 20 s outage: one reconnect attempt every 0.1 s
            conn.error("Unable connect to node with id %s: %s", 1, f"refused #{attempt}")
            clock.now += 0.1
        clock.now = 31.0
        conn.error("Unable connect to node with id %s: %s", 1, "refused again")
        logging.getLogger("aiokafka.producer.sender").warning("Got error produce response: x")
        conn.error("Unable connect to node with id %s: %s", 1, "refused, pending")
    finally:
        relay.detach()

    written = lines(capsys.readouterr().err)
    assert [(w["event"], w["level"]) for w in written] == [("kafka_client_log", "error")] * 2 + [
        ("kafka_client_log", "warning"),
        ("kafka_client_log", "error"),  # detach() writes the repeats not written yet
    ]
    assert written[0]["message"] == "aiokafka.conn: Unable connect to node with id 1: refused #0"
    assert "repeated" not in written[0] and written[0]["storage"] == "kafka"
    assert written[1]["repeated"] == 199 and "refused again" in str(written[1]["message"])
    assert written[3]["repeated"] == 1 and "pending" in str(written[3]["message"])


def test_the_configured_level_governs_and_other_threads_keep_their_logging(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    relay = make_relay(clock)  # created before configure(): it follows the configuration
    configure(log_level="critical")
    conn = logging.getLogger("aiokafka.conn")
    relay.attach()
    try:
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            for _ in range(5):
                conn.error("Unable connect to node with id %s", 1)
            other = threading.Thread(target=lambda: conn.error("the program's own client"))
            other.start()
            other.join()
    finally:
        relay.detach()

    assert capsys.readouterr().err == ""  # critical only: aiokafka's errors are below it
    assert [r.getMessage() for r in caplog.records] == ["the program's own client"]
    assert conn.filters == []  # detached


def test_following_logger_picks_up_a_later_configure(capsys: pytest.CaptureFixture[str]) -> None:
    log = FollowingLogger().bind(component="x")
    log.info("before")
    configure(log_level="info", log_format="json")
    log.info("after", n=1)
    written = lines(capsys.readouterr().err)
    assert [(w["event"], w["component"], w["n"]) for w in written] == [("after", "x", 1)]


def test_a_program_that_configured_the_library_logging_keeps_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = logging.getLogger("aiokafka")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    library.addHandler(handler)
    library.propagate = False  # as `pyworkflow` (the CLI) silences it, or a program routes it
    relay = make_relay(FakeClock())
    relay.attach()
    try:
        logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s", 1)
    finally:
        relay.detach()
        library.removeHandler(handler)
        library.propagate = True

    assert seen == ["Unable connect to node with id 1"]
    assert capsys.readouterr().err == ""
