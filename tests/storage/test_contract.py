"""The storage contract: the same assertions against every backend of ``conftest.BACKENDS``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anyio
import pytest

from pyworkflow import ConfigurationError, ConflictError, CorruptRecordError, RunLockedError
from pyworkflow._core._events import (
    CancellationRequested,
    ChildWorkflowCompleted,
    ChildWorkflowStarted,
    Event,
    HookCreated,
    HookReceived,
    SleepCompleted,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepStarted,
    WorkflowCompleted,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)
from pyworkflow._core._projection import project
from pyworkflow._core._records import HookStatus, RunStatus
from pyworkflow.storage import StorageBackend

from .conftest import Reopen
from .helpers import (
    T0,
    History,
    cancelled_history,
    expired_hook_history,
    failed_history,
    full_history,
    new_hook_id,
    new_run_id,
    raw,
    started,
    suspended_on_sleep,
    waiting_on_hook,
)


async def append_all(backend: StorageBackend, events: list[Event]) -> None:
    for event in events:
        await backend.append(event.run_id, [event], expected_sequence=event.sequence - 1)


# -- append and read ---------------------------------------------------------------------
async def test_append_then_read_returns_the_same_events(backend: StorageBackend) -> None:
    events, _ = full_history(History())
    await backend.append(events[0].run_id, events[:3], expected_sequence=0)
    await backend.append(events[0].run_id, events[3:], expected_sequence=3)

    assert await backend.read(events[0].run_id) == events
    assert [e.sequence for e in await backend.read(events[0].run_id)] == list(range(1, 20))


async def test_read_after_a_sequence_returns_only_newer_events(backend: StorageBackend) -> None:
    events, _ = full_history(History())
    run_id = events[0].run_id
    await append_all(backend, events)

    assert await backend.read(run_id, after=5) == events[5:]
    assert await backend.read(run_id, after=len(events) - 1) == events[-1:]
    assert await backend.read(run_id, after=len(events)) == []
    assert await backend.read(run_id, after=100) == []
    assert await backend.read(run_id, after=0) == events


async def test_a_stale_writer_gets_conflict_and_writes_nothing(backend: StorageBackend) -> None:
    h = History()
    first = started(h)
    await backend.append(h.run_id, [first], expected_sequence=0)
    winner = h.step(StepStarted, 1, "process_order")
    await backend.append(h.run_id, [winner], expected_sequence=1)
    before = await backend.get_run(h.run_id)

    loser = StepStarted(
        run_id=h.run_id,
        sequence=2,
        timestamp=h.now,
        step_id=h.step_id(1),
        step_name="other",
        checkpoint=1,
        attempt=1,
    )
    with pytest.raises(ConflictError, match="another writer appended first") as info:
        await backend.append(h.run_id, [loser], expected_sequence=1)

    assert not isinstance(info.value, RunLockedError)
    assert await backend.read(h.run_id) == [first, winner]
    assert await backend.get_run(h.run_id) == before
    step = await backend.get_step(h.step_id(1))
    assert step is not None and step.step_name == "process_order"


async def test_a_second_start_of_the_same_run_conflicts(backend: StorageBackend) -> None:
    h = History()
    first = started(h)
    await backend.append(h.run_id, [first], expected_sequence=0)
    again = WorkflowStarted(run_id=h.run_id, sequence=1, timestamp=h.now, workflow_name="intruder")

    with pytest.raises(ConflictError):
        await backend.append(h.run_id, [again], expected_sequence=0)

    assert await backend.read(h.run_id) == [first]
    run = await backend.get_run(h.run_id)
    assert run is not None and run.workflow_name == "order_workflow"


async def test_concurrent_appenders_at_one_sequence_have_exactly_one_winner(
    backend: StorageBackend,
) -> None:
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    outcomes: list[str] = []

    async def contend(i: int) -> None:
        event = h.make(
            StepStarted, step_id=h.step_id(1), step_name=f"s{i}", checkpoint=1, attempt=1
        )
        try:
            await backend.append(h.run_id, [event], expected_sequence=1)
        except ConflictError:
            outcomes.append("conflict")
        else:
            outcomes.append(f"s{i}")

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(contend, i)

    winners = [o for o in outcomes if o != "conflict"]
    assert len(winners) == 1
    events = await backend.read(h.run_id)
    assert len(events) == 2
    assert isinstance(events[1], StepStarted) and events[1].step_name == winners[0]


async def test_events_must_follow_the_log(backend: StorageBackend) -> None:
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    fields = {"timestamp": h.now, "step_id": h.step_id(1), "step_name": "a", "checkpoint": 1}
    skipped = StepStarted(run_id=h.run_id, sequence=3, attempt=1, **fields)
    foreign = StepStarted(run_id=new_run_id(), sequence=2, attempt=1, **fields)
    twice = StepStarted(run_id=h.run_id, sequence=2, attempt=1, **fields)

    with pytest.raises(ConfigurationError, match="does not follow"):
        await backend.append(h.run_id, [skipped], expected_sequence=1)
    with pytest.raises(ConfigurationError, match="does not follow"):
        await backend.append(h.run_id, [foreign], expected_sequence=1)
    with pytest.raises(ConfigurationError, match="does not follow"):
        await backend.append(h.run_id, [twice, twice], expected_sequence=1)

    assert len(await backend.read(h.run_id)) == 1


async def test_a_log_must_start_with_workflow_started(backend: StorageBackend) -> None:
    h = History()
    orphan = h.make(StepStarted, step_id=h.step_id(1), step_name="a", checkpoint=1, attempt=1)

    with pytest.raises(CorruptRecordError, match="workflow_started"):
        await backend.append(h.run_id, [orphan], expected_sequence=0)

    assert await backend.read(h.run_id) == []
    assert await backend.get_run(h.run_id) is None


async def test_appending_nothing_changes_nothing(backend: StorageBackend) -> None:
    h = History()
    await backend.append(h.run_id, [], expected_sequence=0)
    assert await backend.read(h.run_id) == []
    assert await backend.get_run(h.run_id) is None


async def test_a_batch_is_written_whole(backend: StorageBackend) -> None:
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    batch = [
        h.step(StepStarted, 1, "charge"),
        h.step(StepFailed, 1, "charge", error_type="E", error_message="m", final=False),
        h.step(StepRetrying, 1, "charge", attempt=2, resume_at=h.now, delay=5.0),
    ]
    await backend.append(h.run_id, batch, expected_sequence=1)

    assert await backend.read(h.run_id, after=1) == batch
    step = await backend.get_step(h.step_id(1))
    assert step is not None and step.status == "retrying" and step.attempt == 2


# -- records -------------------------------------------------------------------------------
async def test_records_follow_every_event_of_a_full_run(backend: StorageBackend) -> None:
    events, _ = full_history(History())
    run_id = events[0].run_id
    for n, event in enumerate(events, start=1):
        await backend.append(run_id, [event], expected_sequence=n - 1)
        expected = project(None, events[:n])
        assert await backend.get_run(run_id) == expected.run, event.type
        for step_id, record in expected.steps.items():
            assert await backend.get_step(step_id) == record, event.type
        for hid, hook in expected.hooks.items():
            assert await backend.get_hook(hid) == hook, event.type

    run = await backend.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert run.result == {"status": "done"}
    assert run.step_count == 2 and run.last_sequence == len(events)
    assert run.tags == ("shop",) and run.idempotency_key == "order-1"
    assert run.args == ["order-1", 99.5]
    assert run.completed_at == events[-1].timestamp


async def test_run_status_through_suspension_and_resumption(backend: StorageBackend) -> None:
    events, _ = full_history(History())
    run_id = events[0].run_id
    seen: list[tuple[str, RunStatus, str | None]] = []
    for n, event in enumerate(events, start=1):
        await backend.append(run_id, [event], expected_sequence=n - 1)
        run = await backend.get_run(run_id)
        assert run is not None
        seen.append((event.type.value, run.status, run.suspended_reason))

    assert ("workflow_started", RunStatus.RUNNING, None) in seen
    assert ("workflow_suspended", RunStatus.SUSPENDED, "sleep") in seen
    assert ("workflow_suspended", RunStatus.SUSPENDED, "hook") in seen
    assert ("workflow_resumed", RunStatus.RUNNING, None) in seen
    assert seen[-1] == ("workflow_completed", RunStatus.COMPLETED, None)


async def test_a_suspended_run_records_when_it_is_due(backend: StorageBackend) -> None:
    events, _ = full_history(History())
    sleeping = events[:12]  # ... sleep_started, workflow_suspended(sleep)
    await append_all(backend, sleeping)
    run = await backend.get_run(events[0].run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.resume_at == sleeping[-1].resume_at  # type: ignore[union-attr]


async def test_a_failed_run_and_its_failed_step(backend: StorageBackend) -> None:
    h = History()
    events = failed_history(h)
    await append_all(backend, events)

    run = await backend.get_run(h.run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error == "ValueError: card"
    step = await backend.get_step(h.step_id(1))
    assert step is not None
    assert (step.status, step.error_type, step.error_message) == ("failed", "ValueError", "card")


async def test_a_cancelled_run(backend: StorageBackend) -> None:
    h = History()
    await append_all(backend, cancelled_history(h))
    run = await backend.get_run(h.run_id)
    assert run is not None
    assert run.status is RunStatus.CANCELLED
    assert run.cancellation_requested and run.cancellation_reason == "customer cancelled"
    assert run.completed_at is not None and run.resume_at is None


async def test_step_records_through_a_retry(backend: StorageBackend) -> None:
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    step_id = h.step_id(1)
    statuses = []
    for make in (
        lambda: h.step(StepStarted, 1, "charge"),
        lambda: h.step(StepFailed, 1, "charge", error_type="E", error_message="m", final=False),
        lambda: h.step(
            StepRetrying, 1, "charge", attempt=2, resume_at=h.now + timedelta(seconds=9), delay=9.0
        ),
        lambda: h.step(StepStarted, 1, "charge", attempt=2),
        lambda: h.step(StepCompleted, 1, "charge", attempt=2, result=raw([1, 2])),
    ):
        event = make()
        await backend.append(h.run_id, [event], expected_sequence=event.sequence - 1)
        step = await backend.get_step(step_id)
        assert step is not None
        statuses.append((step.status, step.attempt))

    assert statuses == [
        ("running", 1),
        ("retrying", 1),
        ("retrying", 2),
        ("running", 2),
        ("completed", 2),
    ]
    step = await backend.get_step(step_id)
    assert step is not None and step.result == [1, 2] and step.step_name == "charge"


# -- hooks ------------------------------------------------------------------------------
async def test_hooks_by_id_and_by_run(backend: StorageBackend) -> None:
    events, hook_id = full_history(History())
    run_id = events[0].run_id
    await append_all(backend, events[:16])  # hook created, run suspended

    hook = await backend.get_hook(hook_id)
    assert hook is not None
    assert (hook.run_id, hook.hook_name, hook.status) == (run_id, "approval", HookStatus.PENDING)
    assert hook.token == f"{run_id}:{hook_id}"
    assert await backend.list_hooks(run_id) == [hook]

    await append_all(backend, events[16:])
    received = await backend.get_hook(hook_id)
    assert received is not None and received.status is HookStatus.RECEIVED
    assert received.payload == {"approved": True}
    assert received.received_at == events[16].timestamp
    assert await backend.list_hooks(run_id) == [received]


async def test_an_expired_hook(backend: StorageBackend) -> None:
    events, hook_id = expired_hook_history(History())
    await append_all(backend, events)
    hook = await backend.get_hook(hook_id)
    assert hook is not None and hook.status is HookStatus.EXPIRED


async def test_list_hooks_of_all_runs_oldest_first(backend: StorageBackend) -> None:
    first, first_hook = expired_hook_history(History())
    second, second_hook = full_history(History(start=first[-1].timestamp + timedelta(hours=1)))
    await append_all(backend, first)
    await append_all(backend, second)

    hooks = await backend.list_hooks()
    assert [h.hook_id for h in hooks] == [first_hook, second_hook]
    assert await backend.list_hooks(first[0].run_id) == [hooks[0]]


async def test_a_payload_for_an_unknown_hook_is_rejected(backend: StorageBackend) -> None:
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    stray = h.make(HookReceived, hook_id=new_hook_id(), checkpoint=1, payload=raw(1))
    with pytest.raises(CorruptRecordError, match="unknown hook"):
        await backend.append(h.run_id, [stray], expected_sequence=1)
    assert len(await backend.read(h.run_id)) == 1


# -- unknown ids ----------------------------------------------------------------------------
async def test_unknown_ids_give_empty_answers(backend: StorageBackend) -> None:
    run_id = new_run_id()
    assert await backend.read(run_id) == []
    assert await backend.read(run_id, after=3) == []
    assert await backend.get_run(run_id) is None
    assert await backend.get_step(f"{run_id}.1") is None
    assert await backend.get_hook(new_hook_id()) is None
    assert await backend.list_hooks(run_id) == []
    assert await backend.list_hooks() == []
    assert list(await backend.list_runs()) == []


# -- idempotency ------------------------------------------------------------------------------
async def test_the_first_idempotency_claim_wins(backend: StorageBackend) -> None:
    first, second = new_run_id(), new_run_id()
    assert await backend.claim_idempotency_key("order-123", first) == first
    assert await backend.claim_idempotency_key("order-123", second) == first
    assert await backend.claim_idempotency_key("order-123", first) == first
    assert await backend.claim_idempotency_key("order-124", second) == second
    assert await backend.claim_idempotency_key("ORDER-123", second) == second


async def test_idempotency_keys_may_hold_any_text(backend: StorageBackend) -> None:
    run_id = new_run_id()
    for key in ("../../etc/passwd", "a/b", "ключ 🔑", "x" * 1000, "nul\x00byte"):
        assert await backend.claim_idempotency_key(key, run_id) == run_id
        assert await backend.claim_idempotency_key(key, new_run_id()) == run_id


async def test_concurrent_claims_of_one_key_agree(backend: StorageBackend) -> None:
    candidates = [new_run_id() for _ in range(8)]
    answers: list[str] = []

    async def claim(run_id: str) -> None:
        answers.append(await backend.claim_idempotency_key("webhook-42", run_id))

    async with anyio.create_task_group() as tg:
        for run_id in candidates:
            tg.start_soon(claim, run_id)

    assert len(answers) == 8 and len(set(answers)) == 1
    assert answers[0] in candidates


# -- list_runs -----------------------------------------------------------------------------------
async def _five_runs(backend: StorageBackend) -> list[str]:
    """Runs created an hour apart, oldest first: alpha, beta (failed), alpha, beta
    (cancelled), alpha (running)."""
    ids = []
    for i in range(5):
        h = History(start=T0 + timedelta(hours=i))
        name = "alpha" if i % 2 == 0 else "beta"
        if i == 1:
            events = failed_history(h, name)
        elif i == 3:
            events = cancelled_history(h, name)
        else:
            events = [started(h, name)]
        await append_all(backend, events)
        ids.append(h.run_id)
    return ids


async def test_list_runs_newest_first(backend: StorageBackend) -> None:
    ids = await _five_runs(backend)
    page = await backend.list_runs()
    assert [r.run_id for r in page] == ids[::-1]
    assert page.next_cursor is None


async def test_list_runs_filters(backend: StorageBackend) -> None:
    ids = await _five_runs(backend)
    alpha = await backend.list_runs(workflow_name="alpha")
    assert [r.run_id for r in alpha] == [ids[4], ids[2], ids[0]]
    failed = await backend.list_runs(status=RunStatus.FAILED)
    assert [r.run_id for r in failed] == [ids[1]]
    cancelled_beta = await backend.list_runs(status=RunStatus.CANCELLED, workflow_name="beta")
    assert [r.run_id for r in cancelled_beta] == [ids[3]]
    running = await backend.list_runs(status=RunStatus.RUNNING)
    assert {r.run_id for r in running} == {ids[0], ids[2], ids[4]}
    assert list(await backend.list_runs(workflow_name="gamma")) == []


async def test_list_runs_pages_with_a_cursor(backend: StorageBackend) -> None:
    ids = await _five_runs(backend)
    pages, cursor = [], None
    while True:
        page = await backend.list_runs(limit=2, cursor=cursor)
        pages.append([r.run_id for r in page])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "10"])
async def test_list_runs_rejects_a_bad_limit(backend: StorageBackend, limit: object) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        await backend.list_runs(limit=limit)  # type: ignore[arg-type]


async def test_list_runs_rejects_a_malformed_cursor(backend: StorageBackend) -> None:
    await _five_runs(backend)
    with pytest.raises(ConfigurationError, match="cursor"):
        await backend.list_runs(cursor="not-a-cursor")


# -- lock_run ---------------------------------------------------------------------------------
async def test_lock_run_is_exclusive_until_released(backend: StorageBackend) -> None:
    run_id, other = new_run_id(), new_run_id()
    async with backend.lock_run(run_id):
        with pytest.raises(RunLockedError) as info:
            async with backend.lock_run(run_id):
                pytest.fail("a second holder got the lock")
        assert info.value.run_id == run_id
        assert run_id in str(info.value)
        async with backend.lock_run(other):  # other runs are independent
            pass
    async with backend.lock_run(run_id):  # released
        pass


async def test_lock_run_is_released_when_the_holder_fails(backend: StorageBackend) -> None:
    run_id = new_run_id()
    with pytest.raises(RuntimeError, match="boom"):
        async with backend.lock_run(run_id):
            raise RuntimeError("boom")
    async with backend.lock_run(run_id):
        pass


async def test_lock_run_does_not_block_appends(backend: StorageBackend) -> None:
    """Hook payloads and cancellations are appended while an executor holds the run."""
    h = History()
    await backend.append(h.run_id, [started(h)], expected_sequence=0)
    async with backend.lock_run(h.run_id):
        event = h.step(StepStarted, 1, "a")
        await backend.append(h.run_id, [event], expected_sequence=1)
    assert len(await backend.read(h.run_id)) == 2


# -- due_runs ---------------------------------------------------------------------------------
FAR = T0 + timedelta(days=3650)


def hook_of(events: list[Event]) -> str:
    return next(e.hook_id for e in events if isinstance(e, HookCreated))


async def test_due_runs_follow_every_status_of_a_run(backend: StorageBackend) -> None:
    e, _ = full_history(History())
    run_id = e[0].run_id
    seen = []
    for n, event in enumerate(e, start=1):
        await backend.append(run_id, [event], expected_sequence=n - 1)
        seen.append(await backend.due_runs(FAR))

    # running: due since it became running, unmoved by steps, retries and sleeps started
    # suspended: at its timer; on a hook with no timer: not due until the payload arrives
    retry_at, wake = e[6].resume_at, e[11].resume_at  # type: ignore[union-attr]
    expected = (
        [e[0].timestamp] * 6  # started, steps, a failure, step_retrying
        + [retry_at]  # suspended for the retry
        + [e[7].timestamp] * 4  # resumed, the retried step, sleep_started
        + [wake]  # suspended on the sleep
        + [e[12].timestamp] * 3  # resumed, sleep_completed, hook_created
        + [None]  # suspended on the hook, no timer
        + [e[16].timestamp]  # hook_received: woken at once
        + [e[17].timestamp]  # resumed
        + [None]  # completed
    )
    assert seen == [[] if due is None else [(due, run_id)] for due in expected]


async def test_a_cancellation_wakes_a_suspended_run_at_once(backend: StorageBackend) -> None:
    e = cancelled_history(History())
    run_id = e[0].run_id
    seen = []
    for n, event in enumerate(e, start=1):
        await backend.append(run_id, [event], expected_sequence=n - 1)
        seen.append(await backend.due_runs(FAR))

    wake = e[2].resume_at  # type: ignore[union-attr]
    assert e[3].timestamp < wake
    expected = [e[0].timestamp, e[0].timestamp, wake, e[3].timestamp, e[4].timestamp, None]
    assert seen == [[] if due is None else [(due, run_id)] for due in expected]


async def test_the_first_news_wakes_a_run_and_a_running_run_stays_put(
    backend: StorageBackend,
) -> None:
    h = History()
    expires = T0 + timedelta(hours=1)
    first = started(h)
    hook_id = new_hook_id()
    h.add(HookCreated, hook_id=hook_id, hook_name="approval", checkpoint=1,
          token=f"{h.run_id}:{hook_id}", expires_at=expires)  # fmt: skip
    h.add(CancellationRequested, reason="while running")
    await append_all(backend, h.events)
    assert await backend.due_runs(FAR) == [(first.timestamp, h.run_id)]  # news for a running run

    suspended = h.add(WorkflowSuspended, reason="hook", resume_at=expires)
    await backend.append(h.run_id, [suspended], expected_sequence=3)
    assert await backend.due_runs(FAR) == [(expires, h.run_id)]  # the hook's timeout
    payload = h.add(HookReceived, hook_id=hook_id, checkpoint=1, payload=raw(1))
    await backend.append(h.run_id, [payload], expected_sequence=4)
    assert await backend.due_runs(FAR) == [(payload.timestamp, h.run_id)]
    late = h.add(CancellationRequested, reason="too late")
    await backend.append(h.run_id, [late], expected_sequence=5)
    assert await backend.due_runs(FAR) == [(payload.timestamp, h.run_id)]  # the first counts


async def test_due_runs_follow_appends_of_several_events(backend: StorageBackend) -> None:
    h = History()
    wake = T0 + timedelta(minutes=10)
    first, sleep, suspended = suspended_on_sleep(h, wake)
    await backend.append(h.run_id, [first, sleep, suspended], expected_sequence=0)
    assert await backend.due_runs(FAR) == [(wake, h.run_id)]

    batch = [
        h.add(WorkflowResumed, reason="resume"),
        h.add(SleepCompleted, checkpoint=1),
        h.add(WorkflowCompleted, result=raw(None)),
    ]
    await backend.append(h.run_id, batch, expected_sequence=3)
    assert await backend.due_runs(FAR) == []


async def _due_mix(backend: StorageBackend) -> list[tuple[datetime, str]]:
    """Runs of every kind; returns the due ones, earliest first (ties by run id)."""
    one_hour = T0 + timedelta(hours=1)
    due: list[tuple[datetime, str]] = []
    for wake in (T0 + timedelta(hours=3), one_hour, one_hour, one_hour):
        events = suspended_on_sleep(History(), wake)
        await append_all(backend, events)
        due.append((wake, events[0].run_id))
    running = [started(History(start=T0 + timedelta(hours=2)))]
    await append_all(backend, running)
    due.append((running[0].timestamp, running[0].run_id))
    await append_all(backend, waiting_on_hook(History()))  # not due
    await append_all(backend, failed_history(History()))  # finished
    await append_all(backend, cancelled_history(History()))
    return sorted(due)


async def test_due_runs_earliest_first_up_to_until(backend: StorageBackend) -> None:
    due = await _due_mix(backend)
    one_hour = T0 + timedelta(hours=1)

    assert await backend.due_runs(FAR) == due
    assert [d for d, _ in due] == sorted(d for d, _ in due) and due[0][0] == one_hour
    assert await backend.due_runs(one_hour) == due[:3]  # until is inclusive
    assert await backend.due_runs(one_hour - timedelta(microseconds=1)) == []
    assert await backend.due_runs(T0 + timedelta(hours=2, seconds=1)) == due[:4]
    elsewhere = timezone(timedelta(hours=5, minutes=30))
    assert await backend.due_runs(one_hour.astimezone(elsewhere)) == due[:3]
    assert all(d.utcoffset() == timedelta(0) for d, _ in await backend.due_runs(FAR))


async def test_due_runs_stops_at_limit(backend: StorageBackend) -> None:
    due = await _due_mix(backend)
    assert await backend.due_runs(FAR, limit=1) == due[:1]
    assert await backend.due_runs(FAR, limit=2) == due[:2]
    assert await backend.due_runs(FAR, limit=4) == due[:4]
    assert await backend.due_runs(FAR, limit=100) == due
    assert await backend.due_runs(FAR, limit=2) == due[:2]  # asking changes nothing


async def test_due_runs_of_an_empty_storage(backend: StorageBackend) -> None:
    assert await backend.due_runs(FAR) == []


@pytest.mark.parametrize(
    ("until", "limit", "match"),
    [
        (datetime(2025, 1, 1), 10, "aware datetime"),
        ("2025-01-01T00:00:00Z", 10, "aware datetime"),
        (T0.date(), 10, "aware datetime"),
        (None, 10, "aware datetime"),
        (T0, 0, "positive int"),
        (T0, -1, "positive int"),
        (T0, True, "positive int"),
        (T0, 2.5, "positive int"),
        (T0, "10", "positive int"),
    ],
)
async def test_due_runs_rejects_bad_arguments(
    backend: StorageBackend, until: object, limit: object, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        await backend.due_runs(until, limit=limit)  # type: ignore[arg-type]
    assert repr(until if match == "aware datetime" else limit) in str(info.value)


async def test_due_runs_see_appends_of_another_instance(
    backend: StorageBackend, reopen: Reopen
) -> None:
    h = History()
    events = waiting_on_hook(h)
    await append_all(backend, events)
    assert await backend.due_runs(FAR) == []

    async with reopen() as other:
        assert await other.due_runs(FAR) == []
        payload = h.add(HookReceived, hook_id=hook_of(events), checkpoint=1, payload=raw(1))
        await other.append(h.run_id, [payload], expected_sequence=3)
        assert await backend.due_runs(FAR) == [(payload.timestamp, h.run_id)]
        resumed = h.add(WorkflowResumed, reason="woken")
        await other.append(h.run_id, [resumed], expected_sequence=4)
        assert await backend.due_runs(FAR) == [(resumed.timestamp, h.run_id)]

        wake = T0 + timedelta(days=2)
        second = suspended_on_sleep(History(), wake)
        await append_all(backend, second)
        both = [(resumed.timestamp, h.run_id), (wake, second[0].run_id)]
        assert await other.due_runs(FAR) == both
        done = h.add(WorkflowCompleted, result=raw(None))
        await other.append(h.run_id, [done], expected_sequence=5)
        assert await backend.due_runs(FAR) == [(wake, second[0].run_id)]

    async with reopen() as restarted:  # a new process: from what storage holds
        assert await restarted.due_runs(FAR) == [(wake, second[0].run_id)]
        assert await restarted.due_runs(wake - timedelta(seconds=1)) == []


# -- children (start_child_workflow) ------------------------------------------------------------
async def test_get_children_lists_the_children_a_parent_recorded(backend: StorageBackend) -> None:
    parent, first, second = History(), History(), History()
    await append_all(backend, [parent.add(WorkflowStarted, workflow_name="p")])
    for kid, checkpoint in ((first, 1), (second, 2)):
        kid.add(WorkflowStarted, workflow_name="k", parent_run_id=parent.run_id, nesting_depth=1)
        await append_all(backend, kid.events)
        recorded = parent.add(
            ChildWorkflowStarted,
            checkpoint=checkpoint,
            child_run_id=kid.run_id,
            workflow_name="k",
        )
        await append_all(backend, [recorded])
    await append_all(backend, [first.add(WorkflowCompleted, result=raw(1))])
    outcome = parent.add(
        ChildWorkflowCompleted, checkpoint=1, child_run_id=first.run_id, result=raw(1)
    )
    await append_all(backend, [outcome])

    children = await backend.get_children(parent.run_id)
    assert [(c.run_id, c.workflow_name, c.status, c.nesting_depth) for c in children] == [
        (first.run_id, "k", RunStatus.COMPLETED, 1),
        (second.run_id, "k", RunStatus.RUNNING, 1),
    ]
    assert all(c.parent_run_id == parent.run_id for c in children)
    top = await backend.get_run(parent.run_id)
    assert top is not None and top.parent_run_id is None and top.nesting_depth == 0
    assert await backend.get_children(first.run_id) == []
    assert await backend.get_children(new_run_id()) == []
