"""The actor runtime (``pyworkflow.actors.Supervisor``): the three figures of issue 10.

1. **Throughput**: 300 concurrent 3-step runs (``workload.three_steps``) through a
   supervisor, driven three ways (``_sample_supervisor``): "batch" (one task starts them
   one after the other, then awaits their results in order), "caller per run" (a task per
   run starts it and awaits its result) and "2 tasks per run" (a task per run starts it,
   then a task per run awaits its result), against the same 300 runs through the inline
   runtime (300 concurrent
   ``pyworkflow.start(..., storage=...)`` in a task group, no supervisor) of this tree and of
   the commit before the rewrite (``--baseline-commit``, extracted with ``git archive`` into
   a temp folder and imported with ``PYTHONPATH``). Memory storage, and file storage with
   ``durability="always"`` (the default) and ``"none"``; asyncio and trio. Each cell is a
   subprocess that warms up once and times ``--samples`` samples; cells run interleaved,
   ``--rounds`` rounds. Each sample gets a fresh storage (file: a fresh folder under
   ``--dir``). The supervisor's open/close are outside the timed part.
2. **Wake-up lag** of 1,000 due timers: 1,000 runs each ``await sleep(due)`` with due times
   spread evenly over 2 s of real time, in a supervisor with the system clock. All runs are
   started and suspended before the first due time (the script checks it). Lag = the
   ``sleep_completed`` event's timestamp minus the ``sleep_started`` event's ``resume_at``
   ("written"), and the wall time at which the workflow went on after the sleep minus
   ``resume_at`` ("continued"; ``time.monotonic`` anchored to the wall clock once).
3. **RSS** of a supervisor holding suspended runs, in a fresh subprocess: ``VmRSS`` (from
   ``/proc/self/status``) after the imports and an empty supervisor opened on a file storage,
   then after ``--rss-runs`` runs that each ``await sleep("1d")`` were started through
   ``sup.start`` (1,000 concurrent callers; ``max_active=1000`` holds the rest back) and all
   of them rested (no active actor left: the supervisor holds one timer entry per run). For
   scale, the same for bare tasks (one ``anyio`` task per run, each waiting on an event): a
   lower bound for "one live task per run".

Run: python benchmarks/bench_actors.py [--quick] [--rounds R] [--samples S] [--dir PATH]
         [--only throughput,lag,rss] [--storages memory,file-always,file-none]
         [--lag-spread SECONDS] [--rss-runs N]
         [--rss-durability none|batch|always] [--baseline-commit REV | --baseline-tree DIR |
         --no-baseline]

``--quick``: 10,000 runs for the RSS figure instead of 100,000 (file creation is slow on
some disks: ~20-700 us a file on this project's CI VM, a few files per run). The RSS run
uses ``durability="none"`` by default (memory does not depend on fsyncs; it halves the time).
The benchmark measures the working tree it sits in, uncommitted changes included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUNS = 300
STEPS_PER_RUN = 3
LAG_RUNS = 1000
LAG_SPREAD = 2.0
STORAGES = ("memory", "file-always", "file-none")
LOOPS = ("asyncio", "trio")
SHAPES = ("batch", "caller", "tasks")  # how callers drive the supervisor: _sample_supervisor


# -- shared helpers ---------------------------------------------------------------------------
def make_storage(kind: str, folder: Path) -> Any:
    from pyworkflow.storage import FileStorageBackend, InMemoryStorageBackend

    if kind == "memory":
        return InMemoryStorageBackend()
    durability = kind.removeprefix("file-")
    return FileStorageBackend(folder / "store", durability=durability)


def vm_kib(field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of this process, from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


FAILURES: list[str] = []
"""Workers that failed and were run again (printed at the end: a failure is a finding)."""


def run_worker(args: list[str], pythonpath: Path, timeout: float = 3600) -> dict[str, Any]:
    """Run a worker subprocess and return its JSON line; a failed worker is reported and
    run again (twice at most)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    for attempt in range(3):
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=str(HERE), timeout=timeout
        )
        if proc.returncode == 0:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["resume_not_due"] = proc.stderr.count("resume_not_due")
            return result
        lines = [line.strip(" |") for line in proc.stderr.strip().splitlines()]
        error = next((line for line in reversed(lines) if "Error" in line), "no error line")
        FAILURES.append(f"worker {' '.join(args)} (attempt {attempt + 1}): {error}")
        print(f"  ! {FAILURES[-1]}")
    raise SystemExit(f"worker {' '.join(args)} failed 3 times; see above")


async def settled(sup: Any) -> None:
    """Wait until the supervisor has no active actor (every run rested).

    Introspection for the benchmark: ``Supervisor._actors`` holds the active actors."""
    import anyio

    while sup._actors:  # noqa: ASYNC110 (no event to wait on: polls the supervisor's state)
        await anyio.sleep(0.01)


# -- worker: throughput ------------------------------------------------------------------------
async def _sample_supervisor(storage: Any, shape: str = "batch") -> float:
    """One sample through a supervisor; ``shape`` is how the caller drives it:

    * ``batch``: one task starts the runs one after the other (``sup.start`` returns once
      the run is durably started), then awaits their results in order;
    * ``caller``: a task per run (like the inline runtime's callers) starts it and awaits
      its result;
    * ``tasks``: a task per run starts it, then a task per run awaits its result.

    Every shape has all the runs executing concurrently (``max_active=1000``)."""
    import anyio
    from workload import three_steps

    from pyworkflow.actors import Supervisor

    ids: list[str] = [""] * RUNS
    results: list[Any] = [None] * RUNS

    async def start_one(i: int) -> None:
        ids[i] = await sup.start(three_steps, i)

    async def result_of(i: int) -> None:
        results[i] = await sup.result(ids[i])

    async def start_and_wait(i: int) -> None:
        await start_one(i)
        await result_of(i)

    async with Supervisor(storage=storage, max_active=1000) as sup:
        t0 = time.perf_counter()
        if shape == "batch":
            for i in range(RUNS):
                await start_one(i)
            for i in range(RUNS):
                await result_of(i)
        else:
            phases = [start_and_wait] if shape == "caller" else [start_one, result_of]
            for phase in phases:
                async with anyio.create_task_group() as tg:
                    for i in range(RUNS):
                        tg.start_soon(phase, i)
        elapsed = time.perf_counter() - t0
    if results != [i + STEPS_PER_RUN for i in range(RUNS)]:
        raise SystemExit(f"wrong results through the supervisor: {results[:5]}...")
    return elapsed


async def _sample_inline(storage: Any) -> float:
    import anyio
    from workload import three_steps

    from pyworkflow import get_workflow_run, start

    ids: list[str] = [""] * RUNS

    async def start_one(i: int) -> None:
        ids[i] = await start(three_steps, i, storage=storage)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(RUNS):
            tg.start_soon(start_one, i)
    elapsed = time.perf_counter() - t0
    for i in range(0, RUNS, 37):
        run = await get_workflow_run(ids[i], storage=storage)
        if run is None or str(getattr(run.status, "value", run.status)) != "completed":
            raise SystemExit(f"inline run {ids[i]} did not complete: {run!r}")
    return elapsed


def worker_throughput(
    runtime: str, storage_kind: str, loop: str, samples: int, folder: str
) -> None:
    import anyio

    import pyworkflow

    def one() -> float:
        with tempfile.TemporaryDirectory(prefix="bench_actors_", dir=folder) as tmp:
            storage = make_storage(storage_kind, Path(tmp))
            if runtime == "inline":
                return anyio.run(_sample_inline, storage, backend=loop)
            shape = runtime.removeprefix("supervisor-")
            return anyio.run(_sample_supervisor, storage, shape, backend=loop)

    one()  # warm-up: imports, caches, first-call costs
    times = [one() for _ in range(samples)]
    print(json.dumps({"samples": times, "pyworkflow": pyworkflow.__file__}))


# -- worker: wake-up lag ------------------------------------------------------------------------
def worker_lag(storage_kind: str, loop: str, folder: str, spread: float) -> None:
    import anyio

    from pyworkflow import get_workflow_events, sleep, workflow
    from pyworkflow.actors import Supervisor

    wall0, mono0 = time.time(), time.monotonic()
    woke: dict[int, float] = {}

    @workflow(durable=True, name="bench_actors_sleeper")
    async def sleeper(index: int, due: dt.datetime) -> int:
        await sleep(due)
        woke[index] = wall0 + (time.monotonic() - mono0)
        return index

    async def main(storage: Any) -> dict[str, Any]:
        ids: list[str] = [""] * LAG_RUNS

        async def start_one(i: int, due: dt.datetime) -> None:
            ids[i] = await sup.start(sleeper, i, due)

        async with Supervisor(storage=storage, max_active=1000) as sup:
            # Calibrate: how long do 100 runs take to start and rest here? (They sleep a day.)
            t0 = time.perf_counter()
            far = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(sup.start, sleeper, -1 - i, far)
            await settled(sup)
            per_run = (time.perf_counter() - t0) / 100
            margin = max(0.5, 2 * per_run * LAG_RUNS + 0.3)
            first_due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=margin)
            step = dt.timedelta(seconds=spread / (LAG_RUNS - 1))
            async with anyio.create_task_group() as tg:
                for i in range(LAG_RUNS):
                    tg.start_soon(start_one, i, first_due + i * step)
            await settled(sup)
            headroom = (first_due - dt.datetime.now(dt.UTC)).total_seconds()
            async with anyio.create_task_group() as tg:
                for i in range(LAG_RUNS):
                    tg.start_soon(sup.result, ids[i], 60)
        written: list[float] = []
        continued: list[float] = []
        for i, run_id in enumerate(ids):
            events = await get_workflow_events(run_id, storage=storage)
            by_type = {e.type.value: e for e in events}
            due = by_type["sleep_started"].resume_at
            written.append((by_type["sleep_completed"].timestamp - due).total_seconds() * 1000)
            continued.append((woke[i] - due.timestamp()) * 1000)
        span = max(woke.values()) - min(woke.values())
        return {"written": written, "continued": continued, "headroom": headroom, "span": span}

    with tempfile.TemporaryDirectory(prefix="bench_actors_", dir=folder) as tmp:
        storage = make_storage(storage_kind, Path(tmp))
        print(json.dumps(anyio.run(main, storage, backend=loop)))


# -- worker: RSS ------------------------------------------------------------------------------
def worker_rss(runs: int, folder: str, durability: str) -> None:
    import anyio

    from pyworkflow import sleep, workflow
    from pyworkflow.actors import Supervisor
    from pyworkflow.storage import FileStorageBackend

    @workflow(durable=True, name="bench_actors_day_sleeper")
    async def day_sleeper(index: int) -> int:
        await sleep("1d")
        return index

    callers = 1000
    out: dict[str, Any] = {"runs": runs}

    async def main(storage: Any) -> None:
        gc.collect()
        out["rss_imports_kib"] = vm_kib()
        async with Supervisor(storage=storage, max_active=1000) as sup:
            gc.collect()
            out["rss_empty_kib"] = vm_kib()
            next_index = 0
            t0 = time.perf_counter()

            curve: list[tuple[int, int]] = []

            async def caller() -> None:
                nonlocal next_index
                while next_index < runs:
                    index, next_index = next_index, next_index + 1
                    await sup.start(day_sleeper, index)
                    if (index + 1) % max(1, runs // 10) == 0:
                        curve.append((index + 1, vm_kib()))

            async with anyio.create_task_group() as tg:
                for _ in range(callers):
                    tg.start_soon(caller)
            await settled(sup)
            out["seconds"] = time.perf_counter() - t0
            gc.collect()
            out["rss_full_kib"] = vm_kib()
            out["hwm_kib"] = vm_kib("VmHWM")
            out["curve"] = sorted(curve)
            out["timer_entries"] = len(getattr(sup, "_timer_due", ()))
            out["active_actors"] = len(sup._actors)

    with tempfile.TemporaryDirectory(prefix="bench_actors_rss_", dir=folder) as tmp:
        storage = FileStorageBackend(Path(tmp) / "store", durability=durability)
        anyio.run(main, storage)
        t0 = time.perf_counter()
    out["cleanup_seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


def worker_tasks(runs: int) -> None:
    """RSS of ``runs`` bare anyio tasks, each waiting on an event: a floor for one live task
    per run (a live run holds far more: its workflow's frames, its context and state)."""
    import anyio

    out: dict[str, Any] = {"runs": runs}

    async def main() -> None:
        gate = anyio.Event()
        gc.collect()
        out["rss_empty_kib"] = vm_kib()
        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(gate.wait)
            await anyio.sleep(0.1)
            gc.collect()
            out["rss_full_kib"] = vm_kib()
            gate.set()

    anyio.run(main)
    print(json.dumps(out))


# -- the parent: orchestrates, prints tables ----------------------------------------------------
def baseline_tree(args: argparse.Namespace, keep: list[Any]) -> Path | None:
    if args.no_baseline:
        return None
    if args.baseline_tree:
        return Path(args.baseline_tree).resolve()
    proc = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", args.baseline_commit],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"(no baseline: git archive {args.baseline_commit} failed: {proc.stderr!r})")
        return None
    tmp = tempfile.TemporaryDirectory(prefix="bench_actors_base_")
    keep.append(tmp)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(tmp.name, filter="data")
    return Path(tmp.name)


def machine(folder: str) -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    fs = "?"
    best = ""
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mount, kind, *_ = line.split()
        if str(Path(folder).resolve()).startswith(mount) and len(mount) > len(best):
            best, fs = mount, f"{kind} on {dev} (mounted at {mount})"
    cores = len(os.sched_getaffinity(0))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {cores} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}\n"
        f"storage folders under {folder}: {fs}\n"
        f"load average (1/5/15 min): {load}\n"
        f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def throughput(args: argparse.Namespace, base: Path | None) -> None:
    runtimes = [(f"supervisor-{shape}", REPO) for shape in SHAPES] + [("inline", REPO)]
    if base is not None:
        runtimes.append(("inline-base", base))
    storages = [s for s in STORAGES if s in args.storages.split(",")]
    cells = [(r, s, lp, tree) for s in storages for lp in LOOPS for r, tree in runtimes]
    samples: dict[tuple[str, str, str], list[float]] = {}
    t_start = time.perf_counter()
    for rnd in range(args.rounds):
        # Interleaved: within each (storage, loop) group the runtimes take turns going first.
        for group in range(0, len(cells), len(runtimes)):
            chunk = cells[group : group + len(runtimes)]
            shift = rnd % len(chunk)
            for runtime, storage, loop, tree in chunk[shift:] + chunk[:shift]:
                name = "inline" if runtime == "inline-base" else runtime
                res = run_worker(
                    ["throughput", name, storage, loop, str(args.samples), args.dir], tree
                )
                if not res["pyworkflow"].startswith(str(tree)):
                    raise SystemExit(f"{runtime} imported {res['pyworkflow']}, not {tree}")
                samples.setdefault((runtime, storage, loop), []).extend(res["samples"])
        print(f"  round {rnd + 1}/{args.rounds} done ({time.perf_counter() - t_start:.0f} s)")
    label = {
        "supervisor-batch": "supervisor, batch",
        "supervisor-caller": "supervisor, caller per run",
        "supervisor-tasks": "supervisor, 2 tasks per run",
        "inline": "inline (this tree)",
        "inline-base": f"inline ({args.baseline_commit})",
    }
    n = args.rounds * args.samples
    print(
        f"\n1. Throughput: {RUNS} concurrent {STEPS_PER_RUN}-step runs; {args.rounds} interleaved "
        f"rounds x {args.samples} samples = {n} per row; runs/s = {RUNS} / time"
    )
    head = (
        f"| {'storage':<11} | {'loop':<7} | {'runtime':<27} | {'median ms':>9} | "
        f"{'runs/s min':>10} | {'runs/s med':>10} | {'steps/s med':>11} | {'vs base':>7} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for storage in storages:
        for loop in LOOPS:
            base_med = None
            if base is not None:
                base_med = statistics.median(samples[("inline-base", storage, loop)])
            for runtime, _ in runtimes:
                times = samples[(runtime, storage, loop)]
                med, worst = statistics.median(times), max(times)
                ratio = f"{base_med / med:.2f}x" if base_med else "-"
                print(
                    f"| {storage:<11} | {loop:<7} | {label[runtime]:<27} | {med * 1000:>9.1f} | "
                    f"{RUNS / worst:>10,.0f} | {RUNS / med:>10,.0f} | "
                    f"{RUNS * STEPS_PER_RUN / med:>11,.0f} | {ratio:>7} |"
                )
    print("(vs base: the baseline's median time / this row's; > 1 = faster than the baseline)")


def lag(args: argparse.Namespace) -> None:
    print(
        f"\n2. Wake-up lag: {LAG_RUNS:,} runs sleeping until due times spread over "
        f"{args.lag_spread:g} s, SystemClock, max_active=1000, poll_interval=1.0"
    )
    head = (
        f"| {'storage':<11} | {'loop':<7} | {'lag of':<23} | {'p50 ms':>7} | {'p99 ms':>7} | "
        f"{'max ms':>7} | {'≤100 ms':>7} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    notes = []
    for storage in ("memory", "file-always", "file-none"):
        for loop in LOOPS:
            res = run_worker(["lag", storage, loop, args.dir, str(args.lag_spread)], REPO)
            notes.append(
                f"{storage}/{loop}: all suspended {res['headroom']:.2f} s before the first due "
                f"time; first to last wake-up {res['span']:.2f} s (due times span "
                f"{args.lag_spread:.2f} s); early wake-ups (resume_not_due) {res['resume_not_due']}"
            )
            pairs = (("written", "sleep_completed written"), ("continued", "workflow continued"))
            for key, what in pairs:
                values = res[key]
                within = sum(v <= 100 for v in values) / len(values)
                print(
                    f"| {storage:<11} | {loop:<7} | {what:<23} | {pct(values, 0.5):>7.1f} | "
                    f"{pct(values, 0.99):>7.1f} | {max(values):>7.1f} | {within:>7.1%} |"
                )
    for note in notes:
        print(f"  {note}")


def rss(args: argparse.Namespace) -> None:
    runs = args.rss_runs or (10_000 if args.quick else 100_000)
    res = run_worker(["rss", str(runs), args.dir, args.rss_durability], REPO, timeout=7200)
    tasks = run_worker(["tasks", str(runs)], REPO)
    mib = 1024
    print(
        f"\n3. RSS: an embedded supervisor on file storage (durability={args.rss_durability!r}) "
        f"holding {runs:,} suspended runs (each sleeping 1 day), asyncio"
    )
    head = f"| {'what':<58} | {'value':>14} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    growth = (res["rss_full_kib"] - res["rss_empty_kib"]) / mib
    task_growth = (tasks["rss_full_kib"] - tasks["rss_empty_kib"]) / mib
    rows = [
        ("VmRSS after imports", f"{res['rss_imports_kib'] / mib:.1f} MiB"),
        (
            "VmRSS with an empty supervisor open (the empty process)",
            f"{res['rss_empty_kib'] / mib:.1f} MiB",
        ),
        (f"VmRSS holding {runs:,} suspended runs", f"{res['rss_full_kib'] / mib:.1f} MiB"),
        ("growth over the empty process", f"{growth:.1f} MiB"),
        ("growth per suspended run", f"{growth * mib * 1024 / runs:,.0f} B"),
        (
            "timer entries / active actors at the end",
            f"{res['timer_entries']:,} / {res['active_actors']}",
        ),
        (f"time to start {runs:,} runs and let them rest", f"{res['seconds']:.1f} s"),
        ("rate", f"{runs / res['seconds']:,.0f} runs/s"),
        (f"for scale: {runs:,} bare anyio tasks waiting on an event", f"+{task_growth:.1f} MiB"),
        (
            "deleting the storage folder afterwards (not timed above)",
            f"{res['cleanup_seconds']:.1f} s",
        ),
    ]
    curve = res["curve"]
    rows.append(("VmHWM (peak) of the process", f"{res['hwm_kib'] / mib:.1f} MiB"))
    slope = 0.0
    if len(curve) >= 2:
        (n0, k0), (n1, k1) = curve[len(curve) // 2 - 1], curve[-1]
        slope = (k1 - k0) / max(1, n1 - n0)  # KiB per run, second half of the starts
        rows.append(("slope over the second half of the starts", f"{slope * 1024:,.0f} B/run"))
    goal = growth
    if runs != 100_000:
        goal = growth + slope * (100_000 - runs) / mib
        factor = 100_000 / runs
        rows.append(("extrapolated to 100,000 runs: growth (+ slope)", f"~{goal:.0f} MiB"))
        rows.append(
            ("extrapolated to 100,000 runs: time (linear)", f"~{res['seconds'] * factor:.0f} s")
        )
    for what, value in rows:
        print(f"| {what:<58} | {value:>14} |")
    points = " ".join(f"{n / 1000:g}k:{k / mib:.0f}" for n, k in curve)
    print(f"  VmRSS (MiB) as the runs were started, no gc: {points}")
    verdict = "met" if goal <= 100 else "NOT met"
    print(f"  goal: <= 100 MB above the empty process for 100,000 runs: {verdict}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        workers: dict[str, Callable[[], None]] = {
            "throughput": lambda: worker_throughput(
                rest[0], rest[1], rest[2], int(rest[3]), rest[4]
            ),
            "lag": lambda: worker_lag(rest[0], rest[1], rest[2], float(rest[3])),
            "rss": lambda: worker_rss(int(rest[0]), rest[1], rest[2]),
            "tasks": lambda: worker_tasks(int(rest[0])),
        }
        workers[kind]()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 runs for the RSS figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2, help="timed samples per cell and round")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where storage folders go")
    parser.add_argument("--lag-spread", type=float, default=LAG_SPREAD, help="seconds")
    parser.add_argument("--only", default="throughput,lag,rss")
    parser.add_argument("--storages", default=",".join(STORAGES), help="throughput cells")
    parser.add_argument("--rss-runs", type=int, default=0, help="override the RSS run count")
    parser.add_argument("--rss-durability", default="none", choices=("always", "batch", "none"))
    parser.add_argument("--baseline-commit", default="04f6b73")
    parser.add_argument("--baseline-tree", default=None, help="a checkout of the baseline")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    args.dir = str(Path(args.dir).resolve())
    print("bench_actors: " + " ".join(["python", "benchmarks/bench_actors.py", *sys.argv[1:]]))
    print(machine(args.dir))
    keep: list[Any] = []
    only = set(args.only.split(","))
    if "throughput" in only:
        base = baseline_tree(args, keep)
        throughput(args, base)
    if "lag" in only:
        lag(args)
    if "rss" in only:
        rss(args)
    for tmp in keep:
        tmp.cleanup()
    if FAILURES:
        print(f"\n{len(FAILURES)} worker(s) failed and were run again:")
        for failure in FAILURES:
            print(f"  {failure}")


if __name__ == "__main__":
    main()
