"""The Kafka wire format and the acceptance fold, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pyworkflow import CorruptRecordError
from pyworkflow._core._events import StepStarted, WorkflowCompleted, WorkflowStarted
from pyworkflow._core._projection import project
from pyworkflow._core._records import HookRecord, StepRecord, WorkflowRun
from pyworkflow.storage._kafka._checkpoint import Assembler, snapshot_runs
from pyworkflow.storage._kafka._codec import (
    CLAIM_VERSION,
    EPOCH_VERSION,
    FENCE_VERSION,
    FORMAT_VERSION,
    Claim,
    EventRecord,
    Fence,
    NewerFormatError,
    claim_record_key,
    decode_claim,
    decode_event_record,
    decode_record,
    encode_claim,
    encode_event_record,
    encode_fence,
    encode_record,
)
from pyworkflow.storage._kafka._views import Views
from tests.storage.helpers import History, full_history, started


def test_every_event_survives_the_round_trip() -> None:
    events, _ = full_history(History())
    for i, event in enumerate(events):
        value = encode_event_record(EventRecord("w1", 7, i, len(events), event))
        assert value[0] == FORMAT_VERSION
        decoded = decode_event_record(value, "test")
        assert decoded == EventRecord("w1", 7, i, len(events), event)
        assert type(decoded.event) is type(event)


def test_json_payloads_travel_verbatim_inside_msgpack() -> None:
    h = History()
    started(h)
    huge = '{"n":123456789012345678901234567890,"f":0.1,"s":"\\u00e9"}'  # > 64-bit int
    event = h.add(WorkflowCompleted, result=msgspec.Raw(huge.encode()))
    value = encode_event_record(EventRecord("w", 1, 0, 1, event))

    plain = msgspec.msgpack.decode(value[1:])  # any msgpack reader can open it
    assert plain[:4] == ["w", 1, 0, 1]
    assert plain[4]["type"] == "workflow_completed" and plain[4]["result"] == huge.encode()
    assert bytes(decode_event_record(value, "t").event.result) == huge.encode()  # type: ignore[union-attr]


def test_unreadable_values_are_named_errors() -> None:
    with pytest.raises(NewerFormatError, match=r"format version 9.*upgrade"):
        decode_event_record(bytes([9]) + b"\x90", "events[0]@5")
    with pytest.raises(CorruptRecordError, match=r"events\[0\]@5: not a pyworkflow event"):
        decode_event_record(bytes([FORMAT_VERSION]) + msgspec.msgpack.encode([1]), "events[0]@5")
    with pytest.raises(CorruptRecordError, match="empty Kafka value"):
        decode_claim(None, "idempotency[0]@1")


def test_claims_and_records_round_trip() -> None:
    claim = Claim("run_1", "w", 3, key="order-1")
    value = encode_claim(claim)
    assert value[0] == CLAIM_VERSION == 2
    assert decode_claim(value, "t", b"ignored") == claim
    assert claim_record_key(claim) != claim_record_key(msgspec.structs.replace(claim, claim=4))
    assert claim_record_key(claim).startswith(b"order-1")
    legacy = bytes([1]) + msgspec.msgpack.encode(["run_1", "w", 3, True])  # version 1
    assert decode_claim(legacy, "t", b"order-1") == Claim("run_1", "w", 3, True, "order-1")
    with pytest.raises(CorruptRecordError, match="without its idempotency key"):
        decode_claim(legacy, "t", None)
    with pytest.raises(NewerFormatError, match="format version 3"):
        decode_claim(bytes([3]) + msgspec.msgpack.encode(["r", "w", 1]), "t")
    with pytest.raises(NewerFormatError, match="format version 4"):  # events: 1..3
        decode_event_record(bytes([4]) + msgspec.msgpack.encode(["r", "w", 1]), "t")
    events, hook_id = full_history(History())
    change = project(None, events)
    seq, run = decode_record(encode_record(19, change.run), WorkflowRun, "t")
    assert (seq, run) == (19, change.run)
    for step in change.steps.values():
        assert decode_record(encode_record(4, step), StepRecord, "t") == (4, step)
    hook = change.hooks[hook_id]
    assert decode_record(encode_record(5, hook), HookRecord, "t") == (5, hook)


def _records(writer: str, batch: int, events: list[object]) -> list[EventRecord]:
    return [EventRecord(writer, batch, i, len(events), e) for i, e in enumerate(events)]  # type: ignore[arg-type]


def test_the_fold_accepts_the_first_append_at_each_sequence_only() -> None:
    h = History()
    first = started(h)
    winner = h.step(StepStarted, 1, "a")
    loser = msgspec.structs.replace(winner, step_name="b")
    after_loser = h.step(StepStarted, 2, "c")
    views = Views()

    verdicts = [
        views.fold_event(0, r)
        for batch, events in enumerate([[first], [winner], [loser], [after_loser]])
        for r in _records("w", batch, events)
    ]

    assert [v.accepted for v in verdicts if v is not None] == [True, True, False, True]
    assert views.read(h.run_id, 0) == [first, winner, after_loser]
    assert views.runs[h.run_id].last_sequence == 3
    rejected = verdicts[2]
    assert rejected is not None and rejected.last_sequence == 2 and rejected.error is None


def test_a_batch_split_across_fetches_is_decided_once_whole() -> None:
    h = History()
    events = [started(h), h.step(StepStarted, 1, "a"), h.step(StepStarted, 2, "b")]
    views = Views()
    records = _records("w", 1, events)

    assert views.fold_event(1, records[0]) is None
    assert views.fold_event(1, records[1]) is None
    assert views.read(h.run_id, 0) == []  # nothing of a half batch is visible
    verdict = views.fold_event(1, records[2])
    assert verdict is not None and verdict.accepted and views.read(h.run_id, 0) == events


def test_fragments_and_refused_projections_are_ignored() -> None:
    h = History()
    first = started(h)
    orphan = History().make(StepStarted, step_id="x", step_name="a", checkpoint=1, attempt=1)
    views = Views()
    assert views.fold_event(0, EventRecord("w", 1, 1, 2, first)) is None  # no index 0
    assert views.read(h.run_id, 0) == []
    verdict = views.fold_event(0, EventRecord("w", 2, 0, 1, orphan))  # sequence 1, but...
    assert verdict is not None and not verdict.accepted
    assert verdict.error is not None and "workflow_started" in str(verdict.error)
    assert views.read(orphan.run_id, 0) == [] and orphan.run_id not in views.runs


def test_the_first_claim_of_a_key_wins() -> None:
    views = Views()
    assert views.fold_claim("k", Claim("run_a", "w1", 1)) == "run_a"
    assert views.fold_claim("k", Claim("run_b", "w2", 1)) == "run_a"
    assert views.fold_claim("k", Claim("run_a", "w2", 1, repair=True)) == "run_a"


def test_fenced_records_and_fences_on_the_wire() -> None:
    """Unfenced records stay byte for byte format 1 (older readers read them); a worker's
    records carry its epoch under format 2, fences are format 3, and a format byte that
    contradicts the record is corrupt."""
    (event,) = [started(History())]
    plain = encode_event_record(EventRecord("w", 1, 0, 1, event))
    assert plain[0] == FORMAT_VERSION and len(msgspec.msgpack.decode(plain[1:])) == 5
    tagged = encode_event_record(EventRecord("w", 1, 0, 1, event, 7))
    assert tagged[0] == EPOCH_VERSION == 2
    assert decode_event_record(tagged, "t") == EventRecord("w", 1, 0, 1, event, 7)
    fence = Fence("w", 4, 9)
    value = encode_fence(fence)
    assert value[0] == FENCE_VERSION == 3 and decode_event_record(value, "t") == fence
    with pytest.raises(CorruptRecordError, match="epoch does not match"):
        decode_event_record(bytes([EPOCH_VERSION]) + plain[1:], "t")


def test_the_fence_rule() -> None:
    """Per partition: a fence is accepted iff its epoch is above the current one; an append
    tagged with an older epoch, or untagged, is rejected (fenced); before a partition's first
    fence every append may land (local mode)."""
    views = Views()
    a, b, c, d = (started(History()) for _ in range(4))
    assert views.fold_fence(0, Fence("w1", 1, 1)) is True
    assert _fold(views, [a], "w1", 1, epoch=1).accepted
    assert views.fold_fence(0, Fence("w2", 1, 2)) is True
    assert views.fold_fence(0, Fence("w1", 2, 2)) is False  # not above: rejected
    stale = _fold(views, [b], "w1", 2, epoch=1)
    assert not stale.accepted and stale.fenced == 2
    assert views.run(b.run_id) is None
    assert _fold(views, [b], "w2", 1, epoch=2).accepted
    untagged = _fold(views, [c], "local", 1, epoch=0)  # module-level calls: refused here
    assert not untagged.accepted and untagged.fenced == 2
    assert _fold(views, [d], "w1", 3, epoch=1, partition=1).accepted  # another partition
    e = started(History())
    assert _fold(views, [e], "local", 1, epoch=0, partition=1).accepted  # never fenced
    assert views.epochs == {0: 2}


def _fold(
    views: Views, events: list[Any], writer: str, batch: int, *, epoch: int, partition: int = 0
) -> Any:
    verdict = None
    for i, e in enumerate(events):
        verdict = views.fold_event(partition, EventRecord(writer, batch, i, len(events), e, epoch))
    assert verdict is not None
    return verdict


def test_the_shipped_wire_formats_decode_and_encode_byte_for_byte() -> None:
    """Golden values (``tests/golden/kafka_wire.json``): an event record as every version
    wrote it (format 1, unfenced), as a fenced worker writes it (format 2), and a fence
    (format 3): they must decode, and encoding them again must give the same bytes. And a
    checkpoint chunk (random snapshot id, so decoded only)."""
    golden = json.loads((Path(__file__).parents[1] / "golden" / "kafka_wire.json").read_text())
    event = WorkflowStarted(
        run_id="run_0123456789abcdef",
        sequence=1,
        timestamp=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        workflow_name="order_workflow",
        args=msgspec.Raw(b'["order-1", 99.5]'),
        tags=("shop",),
        idempotency_key="k-1",
    )
    expected = {
        "event_record_format_1": EventRecord("w1", 3, 0, 1, event),
        "event_record_format_2": EventRecord("w1", 3, 0, 1, event, 2),
        "fence_format_3": Fence("w1", 4, 2),
    }
    chunk = golden.pop("checkpoint_chunk_format_1")
    assert set(golden) == set(expected)
    for name, record in expected.items():
        value = bytes.fromhex(golden[name])
        decoded = decode_event_record(value, name)
        assert decoded == record, name
        again = encode_fence(record) if isinstance(record, Fence) else encode_event_record(record)
        assert again == value, name
    assembler = Assembler()  # a checkpoint of one chunk (format 1 of the checkpoints topic)
    assembler.feed(chunk["key"].encode(), bytes.fromhex(chunk["value"]), "golden")
    newest = assembler.newest("golden")
    assert newest is not None
    snapshot, slot = newest
    assert slot == 1
    where = (snapshot.partition, snapshot.offset, snapshot.epoch, snapshot.holder)
    assert where == (0, 42, 2, "w1")
    assert snapshot_runs(snapshot, "golden") == [[event]]
    assert snapshot.finished == [("run_fedcba9876543210", datetime(2026, 11, 30, 12, tzinfo=UTC))]
