"""KafkaStorageBackend against a real broker: topic layout, the log's acceptance rule,
several backend instances on one prefix, and workflows end to end."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import anyio
import msgspec
import pytest

from pyworkflow import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    RunStatus,
    StorageError,
    cancel_workflow,
    configure,
    get_workflow_events,
    get_workflow_run,
    hook,
    resume,
    resume_hook,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import StepStarted, WorkflowCompleted
from pyworkflow._core._records import StepRecord, WorkflowRun
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.storage._kafka._codec import (
    EventRecord,
    decode_claim,
    decode_record,
    encode_event_record,
)
from pyworkflow.testing import ManualClock
from tests.storage.helpers import History, started

from .conftest import MakeBackend
from .helpers import create_topic, produce_batch, records, topic_configs

pytestmark = pytest.mark.kafka

tokens: list[str] = []


@step(name="kafka.process_order")
async def process_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "status": "processed"}


@step(name="kafka.charge_payment")
async def charge_payment(order: dict[str, Any], amount: float) -> dict[str, Any]:
    return {**order, "charged": amount}


@step(name="kafka.send_notification")
async def send_notification(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "notified": True}


@workflow(name="kafka.order", durable=True)
async def order_workflow(order_id: str, amount: float) -> dict[str, Any]:
    order = await process_order(order_id)
    order = await charge_payment(order, amount)
    return await send_notification(order)


@workflow(name="kafka.approval", durable=True)
async def approval(order_id: str) -> dict[str, Any]:
    order = await process_order(order_id)
    await sleep("1h")
    decision = await hook("approval", on_created=tokens.append)
    return await send_notification({**order, "approved": decision["approved"]})


# -- topics --------------------------------------------------------------------------------
async def test_a_runs_events_sit_in_one_partition_in_order(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend(partitions=3)
    run_ids = [await start(order_workflow, f"o-{i}", 10.0, storage=storage) for i in range(4)]

    by_run: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for message in await records(kafka_bootstrap, f"{storage.topic_prefix}.events"):
        assert message.value[0] == 1  # the format-version byte
        *_envelope, event = msgspec.msgpack.decode(message.value[1:])
        assert message.key.decode() == event["run_id"]
        by_run[event["run_id"]].append((message.partition, message.offset, event))

    assert set(by_run) == set(run_ids)
    for run_id in run_ids:
        found = by_run[run_id]
        assert len({partition for partition, _, _ in found}) == 1, found
        assert [offset for _, offset, _ in found] == sorted(offset for _, offset, _ in found)
        assert [e["sequence"] for _, _, e in found] == list(range(1, 9))
        assert [e["type"] for _, _, e in found] == [
            "workflow_started",
            *["step_started", "step_completed"] * 3,
            "workflow_completed",
        ]
        completed = found[-1][2]
        assert msgspec.json.decode(completed["result"])["charged"] == 10.0  # JSON payload


async def test_topics_are_created_with_their_cleanup_policies(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend()
    p = storage.topic_prefix
    configs = await topic_configs(
        kafka_bootstrap, [f"{p}.{t}" for t in ("events", "runs", "steps", "hooks", "idempotency")]
    )

    assert configs[f"{p}.events"]["cleanup.policy"] == "delete"
    assert configs[f"{p}.events"]["retention.ms"] == "-1"
    for name in ("runs", "steps", "hooks", "idempotency"):
        assert configs[f"{p}.{name}"]["cleanup.policy"] == "compact", name


@pytest.mark.parametrize(("topic", "policy"), [("runs", "delete"), ("events", "compact")])
async def test_an_existing_topic_with_the_wrong_cleanup_policy_is_refused(
    make_backend: MakeBackend,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    topic: str,
    policy: str,
) -> None:
    name = f"{kafka_topic_prefix}.{topic}"
    await create_topic(kafka_bootstrap, name, {"cleanup.policy": policy})

    with pytest.raises(ConfigurationError, match=r"cleanup\.policy") as info:
        await make_backend()

    assert repr(name) in str(info.value)
    assert "kafka-configs.sh" in str(info.value) and "another topic_prefix" in str(info.value)


async def test_accepted_appends_are_published_to_the_compacted_topics(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend()
    run_id = await start(order_workflow, "o-1", 5.0, storage=storage)
    await storage.aclose()  # flushes the projections

    runs = [
        decode_record(m.value, WorkflowRun, "runs")
        for m in await records(kafka_bootstrap, f"{storage.topic_prefix}.runs")
        if m.key == run_id.encode()
    ]
    sequence, last = runs[-1]
    assert (sequence, last.status, last.result["charged"]) == (8, RunStatus.COMPLETED, 5.0)
    assert [s for s, _ in runs] == sorted(s for s, _ in runs)
    steps = {
        m.key.decode(): decode_record(m.value, StepRecord, "steps")[1]
        for m in await records(kafka_bootstrap, f"{storage.topic_prefix}.steps")
    }
    assert sorted(steps) == [f"{run_id}.{i}" for i in (1, 2, 3)]
    assert {s.status for s in steps.values()} == {"completed"}


# -- several writers -------------------------------------------------------------------------
async def test_two_backends_racing_at_one_sequence_have_one_winner(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    a, b = await make_backend(), await make_backend()
    h = History()
    await a.append(h.run_id, [started(h)], expected_sequence=0)
    assert len(await b.read(h.run_id)) == 1  # b's view is at sequence 1 too
    outcomes: dict[str, str] = {}

    async def contend(name: str, storage: KafkaStorageBackend) -> None:
        event = h.make(StepStarted, step_id=h.step_id(1), step_name=name, checkpoint=1, attempt=1)
        try:
            await storage.append(h.run_id, [event], expected_sequence=1)
        except ConflictError:
            outcomes[name] = "conflict"
        else:
            outcomes[name] = "won"

    async with anyio.create_task_group() as tg:
        tg.start_soon(contend, "a", a)
        tg.start_soon(contend, "b", b)

    assert sorted(outcomes.values()) == ["conflict", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    fresh = await make_backend()
    for storage in (a, b, fresh):
        events = await storage.read(h.run_id)
        assert [e.sequence for e in events] == [1, 2]
        assert isinstance(events[1], StepStarted) and events[1].step_name == winner


async def test_a_stale_batch_in_the_log_is_ignored_by_every_reader(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend()
    h = History()
    await storage.append(h.run_id, [started(h)], expected_sequence=0)
    await storage.append(h.run_id, [h.step(StepStarted, 1, "kept")], expected_sequence=1)
    await storage.append(h.run_id, [h.step(StepStarted, 2, "kept")], expected_sequence=2)
    # A writer whose view stopped at sequence 1 writes straight to the log (as another
    # process would): its batch lands after sequence 3, claiming sequence 2.
    stale = StepStarted(run_id=h.run_id, sequence=2, timestamp=h.now, step_id="x",
                        step_name="stale", checkpoint=1, attempt=1)  # fmt: skip
    value = encode_event_record(EventRecord("rogue", 1, 0, 1, stale))
    partition = (await records(kafka_bootstrap, f"{storage.topic_prefix}.events"))[0].partition
    await produce_batch(
        kafka_bootstrap, f"{storage.topic_prefix}.events", partition, h.run_id.encode(), [value]
    )
    after = h.step(StepStarted, 3, "kept")
    await storage.append(h.run_id, [after], expected_sequence=3)  # the log is still at 3

    for reader in (storage, await make_backend()):
        events = await reader.read(h.run_id)
        assert [e.sequence for e in events] == [1, 2, 3, 4]
        assert "stale" not in {getattr(e, "step_name", "") for e in events}
    raw = await records(kafka_bootstrap, f"{storage.topic_prefix}.events")
    assert len(raw) == 5  # the stale record is in the log, ignored


async def test_an_idempotency_race_between_backends_has_one_winner(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    backends = [await make_backend(), await make_backend()]
    answers: dict[str, str] = {}

    async def claim(i: int) -> None:
        answers[f"run_{i}"] = await backends[i % 2].claim_idempotency_key("order-9", f"run_{i}")

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(claim, i)

    holders = set(answers.values())
    assert len(holders) == 1 and holders <= set(answers)
    holder = holders.pop()
    fresh = await make_backend()
    assert await fresh.claim_idempotency_key("order-9", "run_late") == holder
    found = await records(kafka_bootstrap, f"{fresh.topic_prefix}.idempotency")
    claims = [decode_claim(m.value, "c", m.key) for m in found]
    assert claims[0].run_id == holder  # the first claim in the log is the winner's
    assert {c.key for c in claims} == {"order-9"} and not any(c.repair for c in claims)
    assert len({m.key for m in found}) == len(found)  # compaction can drop none of them


# -- workflows -----------------------------------------------------------------------------
async def test_a_workflow_end_to_end(make_backend: MakeBackend, clock: ManualClock) -> None:
    configure(clock=clock)
    storage, other = await make_backend(), await make_backend()
    tokens.clear()
    run_id = await start(approval, "o-7", storage=storage)
    run = await get_workflow_run(run_id, storage=other)
    assert run is not None and (run.status, run.suspended_reason) == (RunStatus.SUSPENDED, "sleep")

    clock.advance(3600)
    assert await resume(run_id, storage=other) is None  # now waiting on the hook
    assert len(tokens) == 1
    run = await resume_hook(tokens[0], {"approved": True}, storage=storage)

    assert run.status is RunStatus.COMPLETED
    assert run.result == {"order_id": "o-7", "status": "processed", "approved": True,
                          "notified": True}  # fmt: skip
    assert [e.type.value for e in await get_workflow_events(run_id, storage=other)][-1] == (
        "workflow_completed"
    )
    cancelled = await start(approval, "o-8", storage=other)
    assert await cancel_workflow(cancelled, reason="customer", storage=storage) is True
    run = await get_workflow_run(cancelled, storage=other)
    assert run is not None and run.status is RunStatus.CANCELLED


async def test_records_from_a_newer_pyworkflow_stop_the_backend_clearly(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend(partitions=1)
    h = History()
    await storage.append(h.run_id, [started(h)], expected_sequence=0)
    garbage = b"\x01not msgpack"
    newer = bytes([4]) + msgspec.msgpack.encode({"from": "the future"})
    topic = f"{storage.topic_prefix}.events"
    await produce_batch(kafka_bootstrap, topic, 0, b"run_x", [garbage])  # skipped by all
    assert len(await storage.read(h.run_id)) == 1
    await produce_batch(kafka_bootstrap, topic, 0, b"run_x", [newer])

    with pytest.raises(CorruptRecordError, match=r"format version 4.*upgrade pyworkflow"):
        await storage.read(h.run_id)
    with pytest.raises(CorruptRecordError, match="format version 4"):  # and stays stopped
        await storage.get_run(h.run_id)


async def test_an_append_too_big_for_one_batch_is_refused_before_writing(
    make_backend: MakeBackend,
) -> None:
    storage = await make_backend(max_append_bytes=64_000)
    h = History()
    await storage.append(h.run_id, [started(h)], expected_sequence=0)
    big = h.make(WorkflowCompleted, result=msgspec.Raw(msgspec.json.encode("x" * 100_000)))
    with pytest.raises(StorageError, match=r"does not fit.*max_append_bytes=64000"):
        await storage.append(h.run_id, [big], expected_sequence=1)
    pair = [h.make(StepStarted, step_id="s", step_name="a", checkpoint=1, attempt=1), big]
    pair[1] = msgspec.structs.replace(big, sequence=3)
    with pytest.raises(StorageError, match="does not fit"):
        await storage.append(h.run_id, pair, expected_sequence=1)
    assert len(await storage.read(h.run_id)) == 1


async def test_wait_finished_wakes_when_another_instance_ends_the_run(
    make_backend: MakeBackend,
) -> None:
    """``wait_finished`` (what ``Client.result`` waits with) waits for a run that is not in
    the log yet, then for its end written by another instance, woken by the tail's fold."""
    from tests.storage.helpers import raw

    waiter, writer = await make_backend(), await make_backend()
    h = History()
    got: list[WorkflowRun] = []

    async def wait() -> None:
        got.append(await waiter.wait_finished(h.run_id))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.sleep(0.2)
        await writer.append(h.run_id, [started(h)], expected_sequence=0)
        await anyio.sleep(0.2)
        assert got == []  # started, not finished
        done = h.add(WorkflowCompleted, result=raw("ok"))
        await writer.append(h.run_id, [done], expected_sequence=1)
        with anyio.fail_after(30):
            while not got:  # noqa: ASYNC110 - the waiter task appends when woken
                await anyio.sleep(0.01)
    assert got[0].status.value == "completed" and got[0].last_sequence == 2


async def test_a_fenced_writer_can_not_append_to_the_partition_it_lost(
    make_backend: MakeBackend,
) -> None:
    """A worker that lost a partition (paused past its session timeout while another took it)
    is rejected at its next append there, although nobody appended to that run since: every
    reader ignores it. Its other partitions, and untagged writers, are not affected."""
    from pyworkflow import RunLockedError

    stale, owner, other = [await make_backend(partitions=1) for _ in range(3)]
    h = History()
    await stale.append(h.run_id, [started(h)], expected_sequence=0)  # before any fence
    assert await stale.fence(0) == 1
    step = h.step(StepStarted, 1, "s")
    await stale.append(h.run_id, [step], expected_sequence=1)  # stale owns it: accepted
    assert await owner.fence(0) == 2  # taken over
    late = h.make(StepStarted, step_id=h.step_id(2), step_name="s", checkpoint=2, attempt=1)
    with pytest.raises(RunLockedError, match=r"taken by another worker \(fence epoch 2"):
        await stale.append(h.run_id, [late], expected_sequence=2)
    assert await other.read(h.run_id) == h.events  # nobody sees it
    await owner.append(h.run_id, [late], expected_sequence=2)  # the owner goes on
    h.events.append(late)
    assert await other.read(h.run_id) == h.events
    loose = History()  # an unfenced writer (module-level calls) is refused: workers' runs
    with pytest.raises(RunLockedError, match=r"served by pyworkflow workers.*actors.Client"):
        await other.append(loose.run_id, [started(loose)], expected_sequence=0)
    assert await other.get_run(loose.run_id) is None
    assert await stale.fence(0) == 3  # and the partition can come back to the stale one


async def test_a_writer_that_holds_the_fence_keeps_it(make_backend: MakeBackend) -> None:
    """A worker whose partitions come back to it in a rebalance fences them again: it holds
    the newest fence already, so nothing is written and its epoch stays (its appends in
    flight, tagged with it, must not be rejected)."""
    worker, other = [await make_backend(partitions=1) for _ in range(2)]
    assert await worker.fence(0) == 1
    h = History()
    await worker.append(h.run_id, [started(h)], expected_sequence=0)
    assert await worker.fence(0) == 1  # held: kept
    await worker.append(h.run_id, [h.step(StepStarted, 1, "s")], expected_sequence=1)
    assert await other.fence(0) == 2
    assert await worker.fence(0) == 3  # taken back: a new epoch
    assert len(await other.read(h.run_id)) == 2
