"""``Event.data``: the event's payload in its JSON form, the same as its line in the log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec

from pyworkflow import configure, get_workflow_events, resume, sleep, start, step, workflow
from pyworkflow.storage import FileStorageBackend
from pyworkflow.testing import ManualClock

attempts: list[int] = []


@step(name="events.flaky", max_retries=1, retry_delay="5s")
async def flaky() -> dict[str, object]:
    attempts.append(1)
    if len(attempts) == 1:
        raise ConnectionError("try again")
    return {"when": datetime(2025, 5, 1, 12, 0), "pair": (1, 2)}


@workflow(name="events.tagged", durable=True, tags=["billing", "eu"])
async def tagged(order_id: str) -> object:
    value = await flaky()
    await sleep("1m")
    return value


async def test_event_data_is_the_json_of_the_log_line(tmp_path: Path, clock: ManualClock) -> None:
    attempts.clear()
    configure(storage=FileStorageBackend(tmp_path), clock=clock)
    run_id = await start(tagged, "order-1")
    clock.advance(5)
    await resume(run_id)
    clock.advance(60)
    await resume(run_id)

    events = await get_workflow_events(run_id)
    lines = (tmp_path / "events" / f"{run_id}.jsonl").read_bytes().splitlines()
    assert len(lines) == len(events)
    for event, line in zip(events, lines, strict=True):
        stored = msgspec.json.decode(line)
        assert event.data == {
            k: v for k, v in stored.items() if k not in ("type", "run_id", "sequence", "timestamp")
        }

    by_type = {e.type.value: e for e in events}
    assert by_type["workflow_started"].data["tags"] == ["billing", "eu"]
    retrying = by_type["step_retrying"]
    # The seed's retry example prints the retry time this way.
    assert retrying.data.get("resume_at", "")[:19] == f"{retrying.resume_at:%Y-%m-%dT%H:%M:%S}"
    assert isinstance(retrying.resume_at, datetime)  # typed access: the attribute
    assert isinstance(by_type["sleep_started"].data["resume_at"], str)
    assert isinstance(by_type["workflow_suspended"].data["resume_at"], str)
    assert by_type["step_completed"].data["result"] == {
        "when": "2025-05-01T12:00:00",
        "pair": [1, 2],
    }
