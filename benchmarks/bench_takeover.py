"""A worker's memory and a partition's takeover, with and without fold checkpoints (issue 11).

One topic prefix, 6 partitions, holding ``--finished`` finished 3-step runs (8 events each,
the events a ``bw_three_steps`` run writes) and ``--suspended`` runs asleep for a day (5
events each, ``bw_sleeper``), written straight to the log through a KafkaStorageBackend:
what is measured is the fold, not the workflows.

1. **Takeover of a partition**, in this process: a fresh backend that folds nothing is told to
   fold partition 0 (``fold_partitions({0})``: read it and catch up, as a worker does when the
   group gives it the partition); best of ``--rounds``. First with no checkpoint (the fold
   reads the partition from its start), then after ``checkpoint(0)``.
2. **A worker's RSS**: ``pyworkflow worker`` (one process, so it owns all 6 partitions) is
   started on the prefix; once it logged ``partitions_assigned`` (its partitions are folded
   and fenced) and 2 s passed, its ``VmRSS``, minus that of the same worker on an empty prefix.
   First with no checkpoints, then with a checkpoint of every partition that remembers no
   finished run (a worker's, once its start commands are committed). Also the time from
   the process's start to ``partitions_assigned`` (Python start-up and the group join
   included).

3. **A client's backend**, in a fresh process: the time ``start()`` takes and the RSS after
   it, above the same on an empty prefix; with ``fold_history=True`` (every partition from
   its start), then the default (from checkpoints), with what its queries of runs finished
   before the checkpoints cost: the first ``list_runs`` (reads ``{prefix}.runs``), a page,
   ``get_run`` and ``read`` of a finished run (read from where the run starts).
4. **A long-lived worker's RSS**: a worker on a fresh prefix executes ``--executed`` 3-step
   runs sent by a Client (200 at a time); its RSS before and after. A worker's backend keeps
   a finished run's id only (its log and records are dropped), so it stays flat.

Run: python benchmarks/bench_takeover.py [--finished N] [--suspended N] [--rounds R]
         [--executed N]
Broker: ``$KAFKA_BOOTSTRAP_SERVERS``, else a local one (``pyworkflow.testing.LocalKafka``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import msgspec

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench_workers import spawn_worker  # noqa: E402
from workers_app import three_steps  # noqa: E402

from pyworkflow._core._events import (  # noqa: E402
    Event,
    SleepStarted,
    StepCompleted,
    StepStarted,
    WorkflowCompleted,
    WorkflowStarted,
    WorkflowSuspended,
)
from pyworkflow._execution._engine import new_run_id  # noqa: E402
from pyworkflow.actors import Client  # noqa: E402
from pyworkflow.storage import KafkaStorageBackend  # noqa: E402

PARTITIONS = 6
_WRITERS = 400


def _history(finished: bool, now: datetime) -> list[Event]:
    """The events of a finished ``bw_three_steps`` run, or of a ``bw_sleeper`` asleep."""
    run_id = new_run_id()
    seq = iter(range(1, 100))

    def base() -> dict[str, object]:
        return {"run_id": run_id, "sequence": next(seq), "timestamp": now}

    def step(cp: int) -> list[Event]:
        ids = {"step_id": f"{run_id}.{cp}", "step_name": "bw_add_one", "checkpoint": cp}
        result = msgspec.Raw(str(cp).encode())
        return [
            StepStarted(**base(), **ids, attempt=1),  # type: ignore[arg-type]
            StepCompleted(**base(), **ids, attempt=1, result=result),  # type: ignore[arg-type]
        ]

    name = "bw_three_steps" if finished else "bw_sleeper"
    events: list[Event] = [
        WorkflowStarted(**base(), workflow_name=name, args=msgspec.Raw(b"[0]"))  # type: ignore[arg-type]
    ]
    if finished:
        events += [*step(1), *step(2), *step(3)]
        events.append(WorkflowCompleted(**base(), result=msgspec.Raw(b"3")))  # type: ignore[arg-type]
    else:
        wake = now + timedelta(days=1)
        events += step(1)
        events.append(SleepStarted(**base(), checkpoint=2, duration=86400.0, resume_at=wake))  # type: ignore[arg-type]
        events.append(WorkflowSuspended(**base(), reason="sleep", resume_at=wake))  # type: ignore[arg-type]
    return events


async def fill(storage: KafkaStorageBackend, finished: int, suspended: int) -> float:
    """Write the runs, ``_WRITERS`` appends at a time; the seconds it took. Their events
    are dated an hour ago: history, not a crash (a worker republishes the records of runs
    that another writer ended in the last 10 minutes, see ``_core``)."""
    now = datetime.now(UTC) - timedelta(hours=1)
    todo = [True] * finished + [False] * suspended
    t0 = time.perf_counter()

    async def writer(share: list[bool]) -> None:
        for kind in share:
            events = _history(kind, now)
            await storage.append(events[0].run_id, events, expected_sequence=0)

    async with anyio.create_task_group() as tg:
        for i in range(_WRITERS):
            tg.start_soon(writer, todo[i::_WRITERS])
    return time.perf_counter() - t0


async def takeover(bootstrap: str, prefix: str, rounds: int) -> tuple[float, int]:
    """Best time to fold partition 0 from a backend folding nothing; the runs it holds."""
    best, runs = float("inf"), 0
    for _ in range(rounds):
        fresh = KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
        try:
            await fresh.fold_partitions(())
            t0 = time.perf_counter()
            await fresh.fold_partitions({0})
            best = min(best, time.perf_counter() - t0)
            runs = len((await fresh.list_runs(limit=1_000_000)).runs)
        finally:
            await fresh.aclose()
    return best, runs


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for pid {pid}")


async def worker_rss(bootstrap: str, prefix: str, log: Path) -> tuple[float, float]:
    """A worker's RSS (MiB) once it has all partitions, and the seconds until it had them."""
    t0 = time.perf_counter()
    proc = spawn_worker(bootstrap, prefix, log, level="info")
    try:
        deadline = time.monotonic() + 600
        while b"partitions_assigned" not in await anyio.Path(log).read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = await anyio.Path(log).read_text()
                raise SystemExit(f"the worker did not take its partitions:\n{text}")
            await anyio.sleep(0.05)
        took = time.perf_counter() - t0
        await anyio.sleep(2)
        return _rss_mib(proc.pid), took
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


_CLIENT = """
import json, sys, time, anyio
from pyworkflow import RunStatus
from pyworkflow.storage import KafkaStorageBackend
def rss():
    line = [l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0]
    return int(line.split()[1]) / 1024
def since(t0):
    return time.perf_counter() - t0
async def main():
    history = sys.argv[3] == "history"
    out = {}
    t0 = time.perf_counter()
    async with KafkaStorageBackend(
        sys.argv[1], topic_prefix=sys.argv[2], partitions=6, fold_history=history,
        request_timeout=300,
    ) as st:
        out["start_s"], out["rss_started"] = since(t0), rss()
        if not history:
            t0 = time.perf_counter()
            page = await st.list_runs(status=RunStatus.COMPLETED, limit=1)
            out["first_list_s"], out["rss_listed"] = since(t0), rss()
            old = page.runs[0].run_id
            t0 = time.perf_counter()
            await st.list_runs(limit=50)
            out["list_s"] = since(t0)
            t0 = time.perf_counter()
            await st.get_run(old)
            out["get_run_s"] = since(t0)
            t0 = time.perf_counter()
            out["events"] = len(await st.read(old))
            out["read_s"] = since(t0)
        out["runs"] = len((await st.list_runs(limit=1_000_000)).runs)
    print(json.dumps(out))
anyio.run(main)
"""


async def client_start(bootstrap: str, prefix: str, mode: str) -> dict[str, float]:
    """A fresh process's KafkaStorageBackend (``mode``: "history" folds every partition from
    its start, "checkpoints" from their newest checkpoint, the default): what it measured."""
    done = await anyio.run_process([sys.executable, "-c", _CLIENT, bootstrap, prefix, mode])
    measured: dict[str, float] = json.loads(done.stdout)
    return measured


async def long_lived(bootstrap: str, runs: int, log: Path) -> tuple[float, float]:
    """A worker's RSS (MiB) once started and after executing ``runs`` runs."""
    prefix = f"bench-takeover-{uuid.uuid4().hex[:8]}"
    storage = KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    async with storage, Client(storage) as client:
        proc = spawn_worker(bootstrap, prefix, log, level="info")
        try:
            while b"partitions_assigned" not in await anyio.Path(log).read_bytes():  # noqa: ASYNC110
                await anyio.sleep(0.05)
            await client.result(await client.start(three_steps, 0), timeout=60)
            before = _rss_mib(proc.pid)
            for first in range(0, runs, 200):
                ids = [await client.start(three_steps, i) for i in range(first, first + 200)]
                for run_id in ids:
                    await client.result(run_id, timeout=120)
            await anyio.sleep(2)
            return before, _rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


async def measure(bootstrap: str, args: argparse.Namespace, tmp: Path) -> None:
    prefix = f"bench-takeover-{uuid.uuid4().hex[:8]}"
    empty = f"bench-takeover-{uuid.uuid4().hex[:8]}"
    for name in (prefix, empty):  # the topics, so that the workers find them
        async with KafkaStorageBackend(bootstrap, topic_prefix=name, partitions=PARTITIONS):
            pass
    base, _ = await worker_rss(bootstrap, empty, tmp / "empty.log")
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix, partitions=PARTITIONS) as st:
        took = await fill(st, args.finished, args.suspended)
        total = args.finished + args.suspended
        print(f"wrote {total:,} runs ({args.finished:,} finished, {args.suspended:,} asleep) "
              f"in {took:.1f} s")  # fmt: skip
        cold, runs = await takeover(bootstrap, prefix, args.rounds)
        print(f"takeover of partition 0, no checkpoint: {cold * 1000:,.0f} ms "
              f"({runs:,} live runs kept)")  # fmt: skip
        rss_cold, join_cold = await worker_rss(bootstrap, prefix, tmp / "cold.log")
        await st.fold_partitions(range(PARTITIONS))
        for partition in range(PARTITIONS):
            # No start command exists here, so none can come again: the finished runs are
            # forgotten, as a worker's checkpoints do once its commands are committed. (The
            # worker wrote checkpoints as it left; at the same offset, this later one wins.)
            await st.checkpoint(partition, remember=())
        warm, held = await takeover(bootstrap, prefix, args.rounds)
        print(f"takeover of partition 0, from its checkpoint: {warm * 1000:,.0f} ms "
              f"({held:,} live runs kept)")  # fmt: skip
        rss_warm, join_warm = await worker_rss(bootstrap, prefix, tmp / "warm.log")
    print(f"worker RSS on an empty prefix: {base:,.1f} MiB")
    print(f"worker RSS above it, no checkpoints: {rss_cold - base:,.1f} MiB "
          f"(start to partitions_assigned: {join_cold:.1f} s)")  # fmt: skip
    print(f"worker RSS above it, from checkpoints: {rss_warm - base:,.1f} MiB "
          f"(start to partitions_assigned: {join_warm:.1f} s)")  # fmt: skip
    empty_rss = (await client_start(bootstrap, empty, "history"))["rss_started"]
    full = await client_start(bootstrap, prefix, "history")
    print(f"a client's backend with fold_history=True: start {full['start_s']:.1f} s, RSS "
          f"+{full['rss_started'] - empty_rss:,.1f} MiB above one on an empty prefix, "
          f"{full['runs']:,.0f} runs")  # fmt: skip
    c = await client_start(bootstrap, prefix, "checkpoints")
    print(f"a client's backend (from checkpoints, the default): start {c['start_s']:.2f} s, "
          f"RSS +{c['rss_started'] - empty_rss:,.1f} MiB; first list_runs (reads {{prefix}}.runs)"
          f" {c['first_list_s']:.1f} s, RSS then +{c['rss_listed'] - empty_rss:,.1f} MiB; "
          f"a page of 50 {c['list_s'] * 1000:,.0f} ms; get_run of a finished run "
          f"{c['get_run_s'] * 1000:,.1f} ms; read() of its {c['events']:.0f} events "
          f"{c['read_s'] * 1000:,.0f} ms; {c['runs']:,.0f} runs")  # fmt: skip
    if args.executed:
        before, after = await long_lived(bootstrap, args.executed, tmp / "long.log")
        print(f"a worker executing {args.executed:,} runs: RSS {before:,.1f} MiB before, "
              f"{after:,.1f} MiB after")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--suspended", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executed", type=int, default=20_000)
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from pyworkflow.testing import LocalKafka

            bootstrap = stack.enter_context(LocalKafka()).bootstrap_servers
        anyio.run(measure, bootstrap, args, Path(tmp))


if __name__ == "__main__":
    main()
