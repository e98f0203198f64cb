"""KafkaStorageBackend: steps per second and start-to-completion latency of a 3-step workflow.

Run: python benchmarks/bench_kafka.py [--runs N] [--concurrency C] [--partitions P]

Uses the broker at ``$KAFKA_BOOTSTRAP_SERVERS``, else starts a local one with
``pyworkflow.testing.LocalKafka`` (Java 17; the jars are fetched once). Each scenario gets fresh
topics. A 3-step run is 8 appends (workflow_started, 3 x step_started/step_completed,
workflow_completed); each append is one produce (acks=all) plus the wait until the backend's
own consumer has folded it. Scenarios, on asyncio and on trio:

* sequential: one run after another (latency of one run on an idle backend);
* concurrent: C runs at a time (throughput when appends of different runs overlap);
* fold: a fresh backend's start-up, folding everything written so far (events per second
  and traced memory per event of its views).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from typing import Any

import anyio
import sniffio

from pyworkflow import get_workflow_run, reset_config, start, step, workflow
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.testing import LocalKafka


@step(name="bench.add_one")
async def add_one(x: int) -> int:
    return x + 1


@workflow(name="bench.three_steps", durable=True)
async def three_steps(x: int) -> int:
    x = await add_one(x)
    x = await add_one(x)
    return await add_one(x)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(storage: KafkaStorageBackend, latencies: list[float]) -> None:
    t0 = time.perf_counter()
    run_id = await start(three_steps, 1, storage=storage)
    latencies.append(time.perf_counter() - t0)
    run = await get_workflow_run(run_id, storage=storage)
    assert run is not None, run_id
    assert run.result == 4, run


async def scenario(
    bootstrap: str, prefix: str, runs: int, concurrency: int, partitions: int
) -> dict[str, Any]:
    """Run ``runs`` workflows, ``concurrency`` at a time; then time a fresh fold."""
    latencies: list[float] = []
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=partitions) as st:
        await one_run(st, [])  # warm-up: metadata, connections
        limiter = anyio.CapacityLimiter(concurrency)

        async def limited() -> None:
            async with limiter:
                await one_run(st, latencies)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(limited)
        elapsed = time.perf_counter() - t0
    return {
        "steps_per_s": 3 * runs / elapsed,
        "runs_per_s": runs / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def fold(bootstrap: str, prefix: str) -> dict[str, Any]:
    """Start fresh backends on ``prefix``: a start-up folds the whole events topic.

    Timed once as is, and once under tracemalloc for the memory its views hold.
    """
    t0 = time.perf_counter()
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix) as st:
        elapsed = time.perf_counter() - t0
        events = sum(r.last_sequence for r in (await st.list_runs(limit=1_000_000)).runs)
    gc.collect()
    tracemalloc.start()
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix):
        gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"events": events, "events_per_s": events / elapsed, "bytes_per_event": traced / events}


async def main(bootstrap: str, args: argparse.Namespace) -> None:
    reset_config()
    library = sniffio.current_async_library()
    rows = []
    for name, concurrency in (("sequential", 1), ("concurrent", args.concurrency)):
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        result = await scenario(bootstrap, prefix, args.runs, concurrency, args.partitions)
        rows.append((f"{library} {name} (x{concurrency})", result))
    folded = await fold(bootstrap, prefix)
    print(f"\n{'scenario':<28}{'steps/s':>10}{'runs/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for label, r in rows:
        print(
            f"{label:<28}{r['steps_per_s']:>10.0f}{r['runs_per_s']:>9.1f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )
    print(
        f"{library} fold at start-up: {folded['events']} events, "
        f"{folded['events_per_s']:,.0f} events/s, ~{folded['bytes_per_event']:.0f} B/event traced"
    )


def run_all(bootstrap: str, args: argparse.Namespace) -> None:
    for backend in ("asyncio", "trio"):
        anyio.run(main, bootstrap, args, backend=backend)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=6)
    arguments = parser.parse_args()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        run_all(external, arguments)
    else:
        with LocalKafka() as broker:
            print(f"local Kafka broker at {broker.bootstrap_servers}", file=sys.stderr)
            run_all(broker.bootstrap_servers, arguments)
