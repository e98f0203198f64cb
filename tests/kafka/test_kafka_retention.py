"""Retention and compaction can't lose a run or an idempotency claim silently.

* An events topic whose retention could delete events of unfinished runs is refused,
  unless ``allow_limited_retention=True`` accepts it.
* A run whose first events are gone from the log is an explicit error, never "unknown".
* Claims survive compaction: each has a record key of its own, so the first claim of a key
  stays first for every reader, even when the loser wrote nothing after its claim.
"""

from __future__ import annotations

import time

import anyio
import msgspec
import pytest
from aiokafka.partitioner import murmur2

from pyworkflow import ConfigurationError, CorruptRecordError, get_workflow_run
from pyworkflow._core._events import StepStarted
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.storage._kafka._codec import Claim, EventRecord, claim_record_key, encode_claim
from pyworkflow.storage._kafka._views import RunStartDeletedError, Views
from tests.storage.helpers import History, started

from .conftest import MakeBackend
from .helpers import create_topic, delete_records, produce_batch, records, topic_configs

WEEK_MS = "604800000"
DAY_MS = "86400000"


def _append(views: Views, batch: int, events: list[object]) -> None:
    for i, event in enumerate(events):
        views.fold_event(0, EventRecord("w", batch, i, len(events), event))  # type: ignore[arg-type]


# -- a run whose start is gone (the fold) ---------------------------------------------------
def test_a_run_whose_first_events_were_deleted_is_an_error_not_unknown() -> None:
    h = History()
    first, a, b = started(h), h.step(StepStarted, 1, "a"), h.step(StepStarted, 2, "b")
    views = Views("p.events")
    _append(views, 2, [a])  # retention took batch 1 (workflow_started): the log starts here
    _append(views, 3, [b])

    assert h.run_id in views.headless and views.last_sequence(h.run_id) == 0
    for query in (lambda: views.read(h.run_id, 0), lambda: views.run(h.run_id)):
        with pytest.raises(RunStartDeletedError) as info:
            query()
        assert isinstance(info.value, CorruptRecordError)
        message = str(info.value)
        assert "retention deleted the start of the run" in message
        assert f"{h.run_id!r}" in message and "'p.events'" in message
        assert "from sequence 2 on" in message and "sequences 1-1" in message
    with pytest.raises(RunStartDeletedError):
        views.list_hooks(h.run_id)
    assert views.list_runs(None, None, 50, None).runs == []

    _append(views, 4, [first])  # a start re-sent later does not resurrect half a run
    with pytest.raises(RunStartDeletedError):
        views.read(h.run_id, 0)
    assert views.read("run_never_seen", 0) == [] and views.run("run_never_seen") is None


async def test_a_reader_of_a_log_truncated_by_the_broker_gets_the_error(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend(partitions=1)
    h = History()
    events = [started(h), h.step(StepStarted, 1, "a"), h.step(StepStarted, 2, "b")]
    for seq, event in enumerate(events):
        await storage.append(h.run_id, [event], expected_sequence=seq)
    await delete_records(kafka_bootstrap, f"{storage.topic_prefix}.events", 0, before=2)

    fresh = await make_backend(partitions=1)  # folds from the log start, now at offset 2
    with pytest.raises(RunStartDeletedError, match="retention deleted the start"):
        await fresh.read(h.run_id)
    with pytest.raises(RunStartDeletedError, match="from sequence 3 on"):
        await get_workflow_run(h.run_id, storage=fresh)
    assert len(await storage.read(h.run_id)) == 3  # a reader that saw the start still has it


# -- retention of the events topic ------------------------------------------------------------
def test_a_limited_events_retention_needs_the_explicit_option() -> None:
    with pytest.raises(ConfigurationError, match="allow_limited_retention=True") as info:
        KafkaStorageBackend("localhost:9092", events_retention_ms=86_400_000)
    assert "events_retention_ms=86400000" in str(info.value)
    KafkaStorageBackend(
        "localhost:9092", events_retention_ms=86_400_000, allow_limited_retention=True
    )
    KafkaStorageBackend("localhost:9092", events_retention_ms=int(WEEK_MS))  # workers only


async def test_a_week_of_retention_is_accepted_for_workers_only(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """Workers checkpoint their partitions every 30 s, so a retention far longer than that
    deletes only what no live run needs, provided only workers append: an unfenced writer
    (local mode, no checkpoints) is refused, and nothing is written."""
    storage = await make_backend(partitions=1, events_retention_ms=int(WEEK_MS))
    topic = f"{kafka_topic_prefix}.events"
    assert (await topic_configs(kafka_bootstrap, [topic]))[topic]["retention.ms"] == WEEK_MS
    h = History()
    first = started(h)
    with pytest.raises(ConfigurationError, match=r"only workers.*actors\.Client") as info:
        await storage.append(h.run_id, [first], expected_sequence=0)
    assert h.run_id in str(info.value) and "retention.ms=-1" in str(info.value)
    assert await storage.read(h.run_id) == [] and await records(kafka_bootstrap, topic) == []
    await storage.fence(0)  # a worker takes the partition: its appends go through
    await storage.append(h.run_id, [first], expected_sequence=0)
    assert await storage.read(h.run_id) == [first]


@pytest.mark.parametrize(
    ("config", "value"), [("retention.ms", DAY_MS), ("retention.bytes", "1073741824")]
)
async def test_an_events_topic_whose_retention_could_delete_runs_is_refused(
    make_backend: MakeBackend,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    capsys: pytest.CaptureFixture[str],
    config: str,
    value: str,
) -> None:
    topic = f"{kafka_topic_prefix}.events"
    await create_topic(kafka_bootstrap, topic, {"cleanup.policy": "delete", config: value})

    with pytest.raises(ConfigurationError) as info:
        await make_backend()
    message = str(info.value)
    assert f"{topic!r}" in message and f"{config}={value}" in message
    assert "--add-config " in message and f"{config}=-1" in message
    assert "allow_limited_retention=True" in message and "snapshots" in message
    assert "only workers" in message and "604800000 (7 days)" in message

    storage = await make_backend(allow_limited_retention=True)  # accepted, with a warning
    assert storage.topic_prefix == kafka_topic_prefix
    warned = [
        line for line in capsys.readouterr().err.splitlines() if "kafka_limited_retention" in line
    ]
    assert len(warned) == 1 and f"{value}" in warned[0]


async def test_created_topics_keep_events_forever_and_claims_compacted(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend()
    p = storage.topic_prefix
    configs = await topic_configs(kafka_bootstrap, [f"{p}.events", f"{p}.idempotency"])
    assert configs[f"{p}.events"]["retention.ms"] == "-1"
    assert configs[f"{p}.events"]["retention.bytes"] == "-1"
    assert configs[f"{p}.idempotency"]["cleanup.policy"] == "compact"


async def test_an_idempotency_topic_that_expires_claims_is_refused(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}.idempotency"
    await create_topic(kafka_bootstrap, topic, {"cleanup.policy": "compact,delete"})
    with pytest.raises(ConfigurationError, match=r"cleanup\.policy='compact,delete'"):
        await make_backend()


# -- claims through a real compaction ---------------------------------------------------------
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # one broker-side compaction is enough
async def test_the_first_claim_survives_compaction_though_the_loser_wrote_no_repair(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """The idempotency topic is made to compact at once (segments roll every 100 ms, no lag,
    any dirt is worth cleaning). Two claims of key ``k`` in today's format (the loser,
    racing, wrote its claim after the winner's and died) and two in the version-1 layout
    (both keyed ``legacy``) are compacted. Today's keep their winner; the version-1 pair
    shows the hazard: compaction kept only the loser's record."""
    topic = f"{kafka_topic_prefix}.idempotency"
    await create_topic(
        kafka_bootstrap,
        topic,
        {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.0001",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        },
    )
    winner = await make_backend()
    assert await winner.claim_idempotency_key("k", "run_a") == "run_a"
    partition = (murmur2(b"k") & 0x7FFFFFFF) % 1
    loser = Claim("run_b", "w-loser", 1, key="k")
    await produce_batch(
        kafka_bootstrap, topic, partition, claim_record_key(loser), [encode_claim(loser)]
    )
    for run_id in ("run_a", "run_b"):  # version 1: the record key is the idempotency key
        value = bytes([1]) + msgspec.msgpack.encode([run_id, "w-old", 1])
        await produce_batch(kafka_bootstrap, topic, partition, b"legacy", [value])

    await _until_compacted(kafka_bootstrap, topic)

    fresh = await make_backend()
    assert await fresh.claim_idempotency_key("k", "run_c") == "run_a"
    assert await fresh.claim_idempotency_key("legacy", "run_c") == "run_b"  # the old hazard


async def _until_compacted(bootstrap: str, topic: str) -> None:
    """Roll segments (a record after segment.ms) until the cleaner has dropped the first
    ``legacy`` record; the cleaner wakes every 15 s (log.cleaner.backoff.ms) at most."""
    deadline = time.monotonic() + 90
    filler = 0
    while True:
        found = await records(bootstrap, topic)
        if [m.value[1:] for m in found if m.key == b"legacy"] == [
            msgspec.msgpack.encode(["run_b", "w-old", 1])
        ]:
            return
        assert time.monotonic() < deadline, "the broker did not compact the topic in 90 s"
        filler += 1
        claim = Claim(f"run_f{filler}", "w-filler", filler, key=f"filler-{filler}")
        await produce_batch(bootstrap, topic, 0, claim_record_key(claim), [encode_claim(claim)])
        await anyio.sleep(1.0)
