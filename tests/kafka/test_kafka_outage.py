"""A broker that is SIGKILLed and stays down: every call fails within ``request_timeout``
with a TransientStorageError that says what is known, ``aclose()`` returns in bounded time,
and aiokafka's reconnect attempts cost a few log lines, not hundreds.

These tests kill a broker of their own (a ``LocalKafka`` on free ports), so the session's
broker keeps serving the other tests.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from pyworkflow import (
    ConflictError,
    StorageError,
    TransientStorageError,
    configure,
    start,
    step,
    workflow,
)
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.testing import KafkaLocalError, LocalKafka
from tests.storage.helpers import History, started

pytestmark = pytest.mark.kafka

TIMEOUT = 2.0
MARGIN = 1.5


@pytest.fixture(scope="module")
def own_broker() -> Iterator[LocalKafka]:
    broker = LocalKafka()
    try:
        broker.start()
    except KafkaLocalError as exc:
        message = f"these tests kill a local broker of their own, and it did not start: {exc}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield broker
    broker.close()


@pytest.fixture
async def broker(own_broker: LocalKafka) -> AsyncIterator[LocalKafka]:
    """The test's broker, running at the start and again at the end of the test."""
    await anyio.to_thread.run_sync(own_broker.start)
    try:
        yield own_broker
    finally:
        await anyio.to_thread.run_sync(own_broker.start)


@pytest.fixture
async def storage(broker: LocalKafka) -> AsyncIterator[KafkaStorageBackend]:
    backend = KafkaStorageBackend(
        broker.bootstrap_servers,
        topic_prefix=f"outage-{uuid.uuid4().hex[:8]}",
        partitions=1,
        request_timeout=TIMEOUT,
    )
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


@step(name="kafka_outage_bounded.charge")
async def charge() -> int:
    return 1


@workflow(name="kafka_outage_bounded.order", durable=True)
async def order() -> int:
    return await charge()


async def timed(call: object) -> tuple[BaseException | None, float]:
    began = time.monotonic()
    try:
        await call  # type: ignore[misc]
    except Exception as exc:
        return exc, time.monotonic() - began
    return None, time.monotonic() - began


async def test_calls_fail_within_request_timeout_and_an_uncertain_append_may_land_later(
    storage: KafkaStorageBackend,
    broker: LocalKafka,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(log_format="json")  # after the backend was made: its logs follow anyway
    h = History()
    first = started(h)
    await anyio.to_thread.run_sync(broker.kill)

    error, took = await timed(storage.append(h.run_id, [first], expected_sequence=0))
    assert isinstance(error, TransientStorageError), error
    assert TIMEOUT - 0.5 < took < TIMEOUT + MARGIN, took
    assert "the outcome is unknown" in str(error) and "may still land" in str(error)
    assert "still ends at sequence 0" in str(error) and "Re-read the run" in str(error)

    error, took = await timed(storage.read(h.run_id))  # reads too, and no hang
    assert isinstance(error, TransientStorageError) and took < TIMEOUT + MARGIN, (error, took)
    assert "no answer from the Kafka brokers" in str(error)

    error, took = await timed(start(order, storage=storage))  # the module-level API
    assert isinstance(error, TransientStorageError) and took < TIMEOUT + MARGIN, (error, took)

    await anyio.to_thread.run_sync(broker.start)
    events = await _read_when_back(storage, h.run_id)
    assert events == [first]  # it landed after all, and nothing had overtaken it: accepted
    other = History(h.run_id)
    with pytest.raises(ConflictError):  # the late batch holds sequence 1 for every reader
        await storage.append(h.run_id, [started(other, "another")], expected_sequence=0)
    assert await storage.read(h.run_id) == [first]

    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    landed = [w for w in written if w["event"] == "kafka_append_landed_late"]
    assert any(w["run_id"] == h.run_id and w["accepted"] for w in landed), landed
    relayed = [w for w in written if w["event"] == "kafka_client_log"]
    assert 1 <= len(relayed) <= 12, [w["message"] for w in relayed]  # hundreds without the relay
    assert all(w["storage"] == "kafka" for w in relayed)
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")]  # none escaped


async def _read_when_back(storage: KafkaStorageBackend, run_id: str) -> list[object]:
    deadline = time.monotonic() + 60
    while True:
        try:
            events: list[object] = list(await storage.read(run_id))
        except TransientStorageError:
            events = []
        if events or time.monotonic() > deadline:
            return events
        await anyio.sleep(0.2)


async def test_aclose_with_the_broker_down_is_bounded_and_quiet(
    broker: LocalKafka, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure(log_level="critical")  # aiokafka's errors follow it: not a line of them
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    storage = KafkaStorageBackend(
        broker.bootstrap_servers, topic_prefix=prefix, partitions=1, request_timeout=TIMEOUT
    )
    await start(order, storage=storage)  # projections published, consumer tailing
    await anyio.to_thread.run_sync(broker.kill)
    error, _ = await timed(start(order, storage=storage))  # a batch left queued, in doubt
    assert isinstance(error, TransientStorageError)

    error, took = await timed(storage.aclose())
    assert error is None and took < TIMEOUT + 5, (error, took)
    error, took = await timed(storage.aclose())
    assert error is None and took < 0.5

    late = KafkaStorageBackend(
        broker.bootstrap_servers, topic_prefix=prefix, request_timeout=TIMEOUT
    )
    error, took = await timed(late.start())  # a start-up with no broker: bounded too
    assert isinstance(error, TransientStorageError) and took < TIMEOUT + MARGIN, (error, took)
    error, took = await timed(late.aclose())
    assert error is None and took < TIMEOUT + 5, (error, took)

    assert "kafka_client_log" not in capsys.readouterr().err
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_aclose_cuts_short_a_start_up_waiting_on_a_silent_broker() -> None:
    """A "broker" that accepts connections and never answers (a hung host): the start-up
    would wait request_timeout (10 s); aclose() ends it at once, and start() says why."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nobody ever reads
        host, port = silent.getsockname()
        storage = KafkaStorageBackend(f"{host}:{port}", topic_prefix="silent")
        outcome: list[BaseException | None] = []

        async def starting() -> None:
            outcome.append((await timed(storage.start()))[0])

        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(starting)
            await anyio.sleep(0.5)
            error, _ = await timed(storage.aclose())
        took = time.monotonic() - began

    assert error is None and took < 3, took
    assert isinstance(outcome[0], StorageError) and "closed" in str(outcome[0]), outcome
