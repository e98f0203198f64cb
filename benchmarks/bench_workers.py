"""Kafka workers (``pyworkflow worker``): the figures of issue 11, on a local broker.

For one and for two worker processes (``python -m pyworkflow worker --app workers_app``, a
fresh topic prefix each, 6 partitions), a ``Client`` in this process sends the runs:

1. **End-to-end latency** of a 3-step run, ``--latency-runs`` runs one after the other: from
   just before ``client.start()`` to the timestamp of the run's ``workflow_completed`` event
   (written by the worker; same machine, same wall clock). The client learns of the end by
   polling, which is not counted: the event's time is.
2. **Throughput** over ``--concurrent`` concurrent 3-step runs: all started at once through
   the client, timed from the first ``start()`` to the last ``workflow_completed``; steps/s =
   3 x runs / that time. Best and median of ``--rounds`` rounds.

Before measuring, the workers' consumer group is stable with every worker in it and a
warm-up run has completed. Worker logs (warning level, the default) go to files under a temp
folder, printed on failure.

Run: python benchmarks/bench_workers.py [--workers 1,2] [--latency-runs N]
         [--concurrent N] [--rounds R]
Broker: ``$KAFKA_BOOTSTRAP_SERVERS``, else a local one (``pyworkflow.testing.LocalKafka``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from workers_app import three_steps  # noqa: E402

from pyworkflow.actors import Client  # noqa: E402
from pyworkflow.storage import KafkaStorageBackend  # noqa: E402

PARTITIONS = 6


def spawn_worker(
    bootstrap: str, prefix: str, log: Path, level: str = "warning"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [
                sys.executable, "-m", "pyworkflow", "worker", "--app", "workers_app",
                "--storage", f"kafka://{bootstrap}?prefix={prefix}",
                "--session-timeout", "6", "--grace-period", "5", "--log-level", level,
            ],
            cwd=HERE,
            env=env,
            stderr=stderr,
        )  # fmt: skip


async def completed_at(storage: KafkaStorageBackend, run_id: str, deadline: float) -> float:
    """Poll until the run finished; the wall time of its last event."""
    while time.monotonic() < deadline:
        run = await storage.get_run(run_id)
        if run is not None and run.status.is_finished:
            events = await storage.read(run_id)
            if run.status.value != "completed":
                raise SystemExit(f"run {run_id} ended {run.status}")
            return events[-1].timestamp.timestamp()
        await anyio.sleep(0.005)
    raise SystemExit(f"run {run_id} did not finish in time")


async def start_one(client: Client, ids: list[str], i: int) -> None:
    ids[i] = await client.start(three_steps, i)


async def wait_assigned(bootstrap: str, prefix: str, workers: int, deadline: float) -> None:
    """Until the workers' consumer group is Stable with ``workers`` members (asked of the
    broker: the workers log at warning level, so that logging is not what is measured)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    async def stable() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            responses = await admin.describe_consumer_groups([f"{prefix}.workers"])
        except KafkaError:  # the group's coordinator is not there yet
            return False
        finally:
            await admin.close()
        for response in responses:
            for group in response.groups:
                error, _, state, *_, members = group[:6]
                if error == 0 and state == "Stable" and len(members) == workers:
                    return True
        return False

    while time.monotonic() < deadline:
        if await _on_asyncio(stable):
            return
        await anyio.sleep(0.3)
    raise SystemExit("workers did not get their partitions in time")


async def _on_asyncio(fn: Any) -> Any:
    """Run an aiokafka coroutine function on a throwaway asyncio loop in a thread."""
    import asyncio

    return await anyio.to_thread.run_sync(lambda: asyncio.run(fn()))


async def scenario(bootstrap: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict:
    prefix = f"bench-workers-{uuid.uuid4().hex[:8]}"
    storage = KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp / f"{prefix}-worker-{i}.log" for i in range(workers)]
    try:
        async with Client(storage=storage) as client:
            procs = [spawn_worker(bootstrap, prefix, log) for log in logs]
            await wait_assigned(bootstrap, prefix, workers, time.monotonic() + 90)
            warm = await client.start(three_steps, 0)
            await completed_at(storage, warm, time.monotonic() + 60)

            latencies = []
            for i in range(args.latency_runs):
                t0 = time.time()
                run_id = await client.start(three_steps, i)
                latencies.append(await completed_at(storage, run_id, time.monotonic() + 60) - t0)

            rates = []
            for _ in range(args.rounds):
                ids: list[str] = [""] * args.concurrent
                t0 = time.time()

                async with anyio.create_task_group() as tg:
                    for i in range(args.concurrent):
                        tg.start_soon(start_one, client, ids, i)
                deadline = time.monotonic() + 120
                ends = [await completed_at(storage, run_id, deadline) for run_id in ids]
                rates.append(3 * args.concurrent / (max(ends) - t0))
    except BaseException:
        for log in logs:
            if log.exists():
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies.sort()
    return {
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max": latencies[-1] * 1000,
        "best": max(rates),
        "median": statistics.median(rates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"bench_workers: python benchmarks/bench_workers.py {' '.join(sys.argv[1:])}".strip())
    print(
        f"machine: {len(os.sched_getaffinity(0))} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; broker: "
        f"{os.environ.get('KAFKA_BOOTSTRAP_SERVERS') or 'local (pyworkflow.testing.LocalKafka)'}"
    )
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench_workers_") as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from pyworkflow.testing import LocalKafka

            bootstrap = stack.enter_context(LocalKafka()).bootstrap_servers
        results: dict[int, Any] = {}
        for n in counts:
            results[n] = anyio.run(scenario, bootstrap, n, args, Path(tmp))
            print(f"  {n} worker(s) done")
    print(
        f"\n{PARTITIONS} partitions; latency over {args.latency_runs} sequential runs; "
        f"throughput over {args.concurrent} concurrent 3-step runs, {args.rounds} rounds"
    )
    head = (
        f"| {'workers':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | "
        f"{'steps/s best':>12} | {'steps/s median':>14} |"
    )
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for n, r in results.items():
        print(
            f"| {n:>7} | {r['p50']:>7.1f} | {r['p99']:>7.1f} | {r['max']:>7.1f} | "
            f"{r['best']:>12,.0f} | {r['median']:>14,.0f} |"
        )


if __name__ == "__main__":
    main()
