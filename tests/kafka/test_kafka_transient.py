"""Retriable aiokafka failures of an append reach the run's owner as TransientStorageError:
it retries, the run completes, no step runs twice and the workflow never sees the error.

The failures are injected at the producer (the aiokafka boundary), so the backend's own
translation decides what the owner gets."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

from pyworkflow import (
    RunStatus,
    configure,
    get_workflow_events,
    get_workflow_run,
    start,
)
from pyworkflow.testing import ManualClock
from tests.flows import calls, three_parts

from .conftest import MakeBackend

pytestmark = pytest.mark.kafka



class FlakyProducer:
    """Makes the producer's first ``times`` sends to the events topic after ``skip`` fail:
    ``"refused"`` before sending (a leader moved), ``"landed"`` after the batch was acked
    (its outcome reported as a timeout: an uncertain append that did land)."""

    def __init__(self, producer: Any, topic: str, mode: str, *, skip: int, times: int) -> None:
        self.producer, self.topic, self.mode = producer, topic, mode
        self.skip, self.times, self.failed = skip, times, 0
        self.send, self.send_batch = producer.send, producer.send_batch
        producer.send = self.wrap(self.send)
        producer.send_batch = self.wrap(self.send_batch)

    def wrap(self, real: Any) -> Any:
        async def send(*args: Any, **kwargs: Any) -> Any:
            topic = kwargs.get("topic", args[1] if real is self.send_batch else args[0])
            if topic != self.topic:
                return await real(*args, **kwargs)
            if self.skip:
                self.skip -= 1
                return await real(*args, **kwargs)
            if self.failed >= self.times:
                return await real(*args, **kwargs)
            self.failed += 1
            if self.mode == "refused":
                raise NotLeaderForPartitionError
            delivery = await real(*args, **kwargs)
            await delivery  # acked: it is in the log
            raise KafkaTimeoutError("no answer in time (but the batch landed)")

        return send


@pytest.mark.parametrize("mode", ["refused", "landed"])
async def test_an_appends_retriable_failures_are_ridden_out(
    make_backend: MakeBackend, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    calls.clear()
    configure(clock=ManualClock())
    storage = await make_backend()
    core = storage._core
    assert core is not None
    flaky = FlakyProducer(core._producer, core.topics.events, mode, skip=2, times=2)

    run_id = await start(three_parts, storage=storage)

    assert flaky.failed == 2
    err = capsys.readouterr().err
    assert err.count("storage_retry") == 2 and "storage_failed" not in err
    run = await get_workflow_run(run_id, storage=storage)
    assert run is not None and run.status is RunStatus.COMPLETED, run
    assert run.result == {"done": ["A", "B", "C"], "seen": []}
    assert calls == {"a": 1, "b": 1, "c": 1}
    events = await get_workflow_events(run_id, storage=await make_backend())
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [e.type.value for e in events]
    assert kinds.count("step_started") == 3 and kinds.count("step_completed") == 3
    assert kinds[-1] == "workflow_completed"
