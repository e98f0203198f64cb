"""A second process for the cross-process tests: ``python -m tests.kafka._child CMD ...``.

Run from the repo root. Each command opens its own KafkaStorageBackend, prints one JSON
line on stdout and exits:

* ``start BOOTSTRAP PREFIX ORDER_ID``: start ``approval`` (it suspends on a hook);
  prints ``{"run_id": ..., "token": ...}``.
* ``show BOOTSTRAP PREFIX RUN_ID``: prints the run's status, result and event types.
* ``resume-hook BOOTSTRAP PREFIX TOKEN``: delivers ``{"approved": true}``; prints the status.
* ``client-start BOOTSTRAP PREFIX KEY``: a ``Client`` starts ``worker_app.flow`` with
  idempotency key KEY (workers execute it); prints ``{"run_id": ...}``.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import msgspec

from pyworkflow import (
    get_workflow_events,
    get_workflow_run,
    hook,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.actors import Client
from pyworkflow.storage import KafkaStorageBackend

from . import worker_app

tokens: list[str] = []


@step(name="kafka_child.reserve")
async def reserve(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "reserved": True}


@step(name="kafka_child.ship")
async def ship(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "shipped": True}


@workflow(name="kafka_child.approval", durable=True)
async def approval(order_id: str) -> dict[str, Any]:
    order = await reserve(order_id)
    decision = await hook("approval", on_created=tokens.append)
    return await ship({**order, "approved": decision["approved"]})


@workflow(name="kafka_child.quick", durable=True)
async def quick(order_id: str) -> dict[str, Any]:
    return await ship(await reserve(order_id))


async def main(command: str, bootstrap: str, prefix: str, arg: str) -> dict[str, Any]:
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=2) as storage:
        if command == "start":
            run_id = await start(approval, arg, storage=storage)
            return {"run_id": run_id, "token": tokens[-1]}
        if command == "show":
            run = await get_workflow_run(arg, storage=storage)
            events = await get_workflow_events(arg, storage=storage)
            return {
                "status": None if run is None else run.status.value,
                "result": None if run is None else run.result,
                "events": [e.type.value for e in events],
            }
        if command == "client-start":
            async with Client(storage) as client:
                run_id = await client.start(worker_app.flow, "race", idempotency_key=arg)
            return {"run_id": run_id}
        if command == "resume-hook":
            run = await resume_hook(arg, {"approved": True}, storage=storage)
            return {"status": run.status.value, "result": run.result}
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    command, bootstrap, prefix, arg = sys.argv[1:5]
    out = anyio.run(main, command, bootstrap, prefix, arg)
    sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
