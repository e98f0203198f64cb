"""Other processes and a restarting broker: what one writes, the other reads; nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from pyworkflow import (
    RunStatus,
    configure,
    get_workflow_events,
    get_workflow_run,
    resume,
    resume_hook,
    start,
)
from pyworkflow.testing import ManualClock
from tests.flows import after, calls, three_parts

from ._child import quick
from .conftest import MakeBackend
from .test_kafka_backend import approval, tokens

if TYPE_CHECKING:
    from pyworkflow.testing._kafka_local import LocalKafka

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]


async def child(*args: str) -> dict[str, Any]:
    """Run ``python -m tests.kafka._child ARGS`` and return the JSON line it prints."""
    done = await anyio.run_process(
        [sys.executable, "-m", "tests.kafka._child", *args], cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


async def test_two_processes_see_each_others_runs(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    storage = await make_backend()  # running before the other process writes anything
    prefix = storage.topic_prefix

    theirs = await child("start", kafka_bootstrap, prefix, "o-1")
    run = await get_workflow_run(theirs["run_id"], storage=storage)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.workflow_name == "kafka_child.approval"
    types = [e.type.value for e in await get_workflow_events(theirs["run_id"], storage=storage)]
    assert types[-2:] == ["hook_created", "workflow_suspended"]

    ours = await start(quick, "o-2", storage=storage)
    shown = await child("show", kafka_bootstrap, prefix, ours)
    assert shown["status"] == "completed"
    assert shown["result"] == {"order_id": "o-2", "reserved": True, "shipped": True}
    assert shown["events"][0] == "workflow_started" and len(shown["events"]) == 6

    resumed = await child("resume-hook", kafka_bootstrap, prefix, theirs["token"])
    assert resumed["status"] == "completed"
    run = await get_workflow_run(theirs["run_id"], storage=storage)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == {"order_id": "o-1", "reserved": True, "approved": True, "shipped": True}


async def test_a_broker_restart_mid_run_loses_nothing(
    make_backend: MakeBackend, kafka_broker: LocalKafka | None, clock: ManualClock
) -> None:
    if kafka_broker is None:
        pytest.skip("restarting needs the local broker (not an external or container one)")
    configure(clock=clock)
    storage = await make_backend()
    run_id = await start(approval, "o-3", storage=storage)
    before = await get_workflow_events(run_id, storage=storage)
    assert before[-1].type.value == "workflow_suspended"

    await anyio.to_thread.run_sync(kafka_broker.restart)
    clock.advance(3600)
    assert await resume(run_id, storage=storage) is None  # the sleep is over; now the hook

    events = await get_workflow_events(run_id, storage=storage)
    assert events[: len(before)] == before
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.type.value for e in events[len(before):]] == [
        "workflow_resumed", "sleep_completed", "hook_created", "workflow_suspended",
    ]  # fmt: skip
    run = await resume_hook(tokens[-1], {"approved": True}, storage=storage)
    assert run.status is RunStatus.COMPLETED and run.result["approved"] is True
    fresh = await make_backend()
    assert (await get_workflow_events(run_id, storage=fresh))[: len(events)] == events
    assert await get_workflow_events(run_id, storage=fresh) == await get_workflow_events(
        run_id, storage=storage
    )


outage: dict[str, Any] = {}


async def _kill_broker_for_3_s() -> None:
    """The broker dies as part b finishes; it is back a few seconds later."""
    broker: LocalKafka = outage["broker"]
    await anyio.to_thread.run_sync(broker.kill)
    restart = threading.Thread(target=lambda: (time.sleep(3), broker.start()))
    outage["restart"] = restart
    restart.start()


async def test_a_broker_crash_mid_step_is_ridden_out(
    make_backend: MakeBackend,
    kafka_broker: LocalKafka | None,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The broker is killed while a step runs and is back ~3 s later (plus its start-up):
    the run completes, each step once, the workflow sees no error and its owner never gives
    up. (The step's outcome append waits in the producer while the leader is unreachable;
    a read-back that times out is a TransientStorageError, which the owner retries.)"""
    if kafka_broker is None:
        pytest.skip("killing needs the local broker (not an external or container one)")
    configure(clock=clock)
    calls.clear()
    after.clear()
    after["b"] = _kill_broker_for_3_s
    outage.clear()
    outage["broker"] = kafka_broker
    storage = await make_backend(request_timeout=5)
    try:
        run_id = await start(three_parts, storage=storage)
    finally:
        after.clear()
        restart = outage.get("restart")
        if restart is not None:
            await anyio.to_thread.run_sync(restart.join)
        await anyio.to_thread.run_sync(kafka_broker.start)  # whatever happened, it runs again
    assert "storage_failed" not in capsys.readouterr().err  # the owner never gave up
    run = await get_workflow_run(run_id, storage=storage)
    assert run is not None and run.status is RunStatus.COMPLETED, run
    assert run.result == {"done": ["A", "B", "C"], "seen": []}
    assert calls == {"a": 1, "b": 1, "c": 1}
    events = await get_workflow_events(run_id, storage=await make_backend())
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.type.value for e in events].count("step_completed") == 3
    assert events[-1].type.value == "workflow_completed"


def test_the_kafka_example_runs(kafka_bootstrap: str) -> None:
    done = subprocess.run(
        [sys.executable, "examples/kafka/01_order_workflow.py"],
        cwd=REPO,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Status:  completed" in done.stdout
    assert "same idempotency key: True" in done.stdout
    assert "8: workflow_completed" in done.stdout
