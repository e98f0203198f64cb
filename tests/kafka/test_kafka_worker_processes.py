"""Worker processes on a real broker: a SIGKILLed worker's runs finish on the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from pyworkflow import WorkflowCancelledError
from pyworkflow._core._replay import fold
from pyworkflow.actors import Client
from pyworkflow.storage import KafkaStorageBackend

from . import worker_app

ROOT = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT = 6


def _worker(bootstrap: str, prefix: str, trail: Path) -> subprocess.Popen[str]:
    """A ``pyworkflow worker`` process; its stderr (info logs) goes to a file beside
    ``trail`` (a pipe nobody reads could fill up and stall it)."""
    env = {**os.environ, "WORKER_TRAIL": str(trail), "PYTHONPATH": str(ROOT)}
    log = trail.parent / f"worker-{len(list(trail.parent.glob('worker-*.log')))}.log"
    with log.open("w") as stderr:
        return subprocess.Popen(
            [
                sys.executable, "-m", "pyworkflow", "worker",
                "--app", "tests.kafka.worker_app",
                "--storage", f"kafka://{bootstrap}?prefix={prefix}",
                "--session-timeout", str(SESSION_TIMEOUT), "--grace-period", "5",
                "--log-level", "info",
            ],
            cwd=ROOT,
            env=env,
            stderr=stderr,
            text=True,
        )  # fmt: skip


def _stop_all(procs: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM (after SIGCONT) the workers still alive and wait for them."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _logs(folder: Path, count: int) -> list[str]:
    return [(folder / f"worker-{i}.log").read_text() for i in range(count)]


@pytest.fixture
def workers(kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    trail = tmp_path / "trail"
    trail.touch()
    procs = [_worker(kafka_bootstrap, kafka_topic_prefix, trail) for _ in range(3)]
    yield procs, trail
    _stop_all(procs)


KINDS = ("plain", "retry", "hook", "cancel")
EXPECTED = {"plain": 2, "retry": 3, "hook": 7}


@pytest.mark.parametrize("anyio_backend", ["trio"])  # the workers are processes: one loop
async def test_300_runs_on_3_workers_one_killed_end_right_and_no_completed_step_reruns(
    kafka_bootstrap: str, kafka_topic_prefix: str, workers, anyio_backend: str  # type: ignore[no-untyped-def]
) -> None:
    """300 runs with steps, sleeps, a retried step, hooks resumed and runs cancelled, on 3
    worker processes; one is SIGKILLed while they run. Every run ends as it should, within
    the session timeout + 5 s of the kill (plus the runs' own work), nothing is lost, and a
    step whose outcome was recorded never runs again."""
    procs, trail = workers
    storage = KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=6)
    async with storage, Client(storage) as client:
        await _balanced(trail.parent, 3)
        kinds = {f"m{i}": KINDS[i % 4] for i in range(300)}
        run_ids: dict[str, str] = {}
        for i, (name, kind) in enumerate(kinds.items()):
            run_ids[name] = await client.start(worker_app.mixed_flow, name, kind)
            if i == 150:  # runs are mid-way on all three workers, more are coming
                procs[0].send_signal(signal.SIGKILL)
                killed_at = time.monotonic()

        async def answer(name: str, kind: str) -> None:
            run_id = run_ids[name]
            with anyio.fail_after(90):
                while not (hooks := await storage.list_hooks(run_id)):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            if kind == "hook":
                await client.resume_hook(hooks[0].token, {"n": 5})
            else:
                assert await client.cancel(run_id, reason="test") is True

        async with anyio.create_task_group() as tg:
            for name, kind in kinds.items():
                if kind in ("hook", "cancel"):
                    tg.start_soon(answer, name, kind)
        outcomes: dict[str, Any] = {}
        for name, run_id in run_ids.items():
            try:
                outcomes[name] = await client.result(run_id, timeout=90)
            except WorkflowCancelledError:
                outcomes[name] = "cancelled"
        took = time.monotonic() - killed_at
        started: Counter[str] = Counter()
        for name, run_id in run_ids.items():
            events = await storage.read(run_id)
            fold(run_id, events)  # a corrupt log raises
            for e in events:
                if e.type.value == "step_started":
                    started[f"{name} {e.data['step_name']}"] += 1
    assert outcomes == {n: EXPECTED.get(k, "cancelled") for n, k in kinds.items()}
    assert took < SESSION_TIMEOUT + 5 + 30  # + the runs' own work and the hooks' answers
    executed: Counter[str] = Counter()
    for line in trail.read_text().splitlines():
        name, what = line.split()
        executed[f"{name} {'wa_flaky' if what == 'flaky' else 'wa_work'}"] += 1
    # A body never runs without its step_started recorded first, and a step whose outcome
    # was recorded never runs again (a re-run needs a new recorded start): executions <=
    # recorded starts. Only steps in flight on the killed worker ran twice.
    assert all(executed[key] <= started[key] for key in started), (executed, started)
    assert set(executed) == set(started)
    retried = [n for n, k in kinds.items() if k == "retry"]
    assert all(executed[f"{n} wa_flaky"] >= 2 for n in retried)  # failed once, then passed
    assert sum(executed.values()) - sum(started.values()) <= 0
    assert sum(started.values()) - (300 * 2 + 75 * 2) <= 100  # re-runs of in-flight steps


@pytest.mark.parametrize("anyio_backend", ["trio"])  # the workers are processes: one loop
async def test_a_stale_worker_woken_after_its_partitions_moved_is_fenced(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, anyio_backend: str
) -> None:
    """SIGSTOP a worker while its steps run, past its session timeout; the other takes its
    partitions (fencing them) and finishes its runs; SIGCONT it. Its steps then finish and
    their outcomes are refused by the fence (``run_fenced`` in its log): every log still
    folds, no step has two outcomes, every run completes."""
    trail = tmp_path / "trail"
    trail.touch()
    a = _worker(kafka_bootstrap, kafka_topic_prefix, trail)
    b = _worker(kafka_bootstrap, kafka_topic_prefix, trail)
    try:
        storage = KafkaStorageBackend(
            kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=6
        )
        async with storage, Client(storage) as client:
            await _balanced(tmp_path, 2)
            run_ids = [await client.start(worker_app.slow_flow, f"s{i}") for i in range(30)]
            await anyio.sleep(1.0)  # a's first steps are in flight (they take 2 s)
            a.send_signal(signal.SIGSTOP)
            results = [await client.result(r, timeout=90) for r in run_ids]
            a.send_signal(signal.SIGCONT)
            with anyio.fail_after(SESSION_TIMEOUT + 10):  # its steps end, it appends
                while "run_fenced" not in _logs(tmp_path, 1)[0]:  # noqa: ASYNC110
                    await anyio.sleep(0.2)
            logs = {r: await storage.read(r) for r in run_ids}
        assert results == [1] * 30
        for run_id, events in logs.items():
            fold(run_id, events)  # raises CorruptRecordError on a corrupt log
            done = [e.data["checkpoint"] for e in events if e.type.value == "step_completed"]
            assert len(done) == len(set(done)) == 2, (run_id, done)
            assert events[-1].type.value == "workflow_completed"
        executed = Counter(trail.read_text().splitlines())
        assert set(executed) == {f"s{i} {j}" for i in range(30) for j in range(2)}
        assert max(executed.values()) <= 2  # a's steps in flight ran again on b, once
    finally:
        _stop_all([a, b])


async def _balanced(folder: Path, count: int) -> None:
    """Wait until each of the ``count`` workers owns some partitions (and none twice)."""
    with anyio.fail_after(60):
        while True:
            owned: list[set[str]] = []
            for log in _logs(folder, count):
                lines = [line for line in log.splitlines() if "partitions_" in line]
                last = lines[-1] if lines else "partitions_revoked partitions=[]"
                listed = last.split("partitions=")[1].strip("[] ")
                owned.append(set(listed.split(", ")) - {""} if "assigned" in last else set())
            if all(owned) and sum(map(len, owned)) == len(set().union(*owned)):
                return
            await anyio.sleep(0.2)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_two_client_processes_racing_one_idempotency_key_start_one_run(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, anyio_backend: str
) -> None:
    """Two processes start the same workflow with one idempotency key at the same moment,
    each through its own Client: both get the one run id, and the worker executes one run
    (each step once)."""
    trail = tmp_path / "trail"
    trail.touch()
    worker = _worker(kafka_bootstrap, kafka_topic_prefix, trail)
    try:
        storage = KafkaStorageBackend(
            kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=6
        )
        async with storage, Client(storage) as client:
            await _balanced(tmp_path, 1)
            command = [sys.executable, "-m", "tests.kafka._child", "client-start"]
            command += [kafka_bootstrap, kafka_topic_prefix, "order-77"]
            env = {**os.environ, "WORKER_TRAIL": str(trail), "PYTHONPATH": str(ROOT)}
            outputs: list[bytes] = []

            async def race() -> None:
                done = await anyio.run_process(command, cwd=ROOT, env=env)
                outputs.append(done.stdout)

            async with anyio.create_task_group() as tg:
                tg.start_soon(race)
                tg.start_soon(race)
            ids = {msgspec.json.decode(out)["run_id"] for out in outputs}
            assert len(ids) == 1, outputs
            (run_id,) = ids
            assert await client.result(run_id, timeout=60) == 3
            assert len((await storage.list_runs()).runs) == 1
        assert sorted(trail.read_text().splitlines()) == ["race 0", "race 1", "race 2"]
    finally:
        _stop_all([worker])


EXAMPLE = ROOT / "examples" / "actors" / "distributed"





def _example_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pyworkflow", "worker", "--app", "app"]
    return subprocess.Popen(
        [*command, "--session-timeout", str(SESSION_TIMEOUT)],
        cwd=EXAMPLE,
        env=env,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_distributed_example_finishes_every_run_with_a_worker_killed(
    kafka_bootstrap: str, kafka_topic_prefix: str, anyio_backend: str
) -> None:
    """examples/actors/distributed as its README says: two workers, the submitter, one
    worker SIGKILLed while runs sleep and wait for approvals."""
    url = f"kafka://{kafka_bootstrap}?prefix={kafka_topic_prefix}"
    env = {**os.environ, "PYWORKFLOW_STORAGE": url, "PYTHONPATH": f"{EXAMPLE}:{ROOT}"}
    workers = [_example_worker(env) for _ in range(2)]
    try:
        async with await anyio.open_process(
            [sys.executable, "submit.py", "--runs", "24"], cwd=EXAMPLE, env=env
        ) as submitter:
            assert submitter.stdout is not None
            seen = b""
            async for chunk in submitter.stdout:
                seen += chunk
                if b"submitted" in seen and workers[0].poll() is None:
                    await anyio.sleep(1.5)
                    workers[0].send_signal(signal.SIGKILL)
            await submitter.wait()
        assert submitter.returncode == 0, seen.decode()[-2000:]
        assert b"24/24 finished" in seen
        assert seen.count(b"approved by dana") == 6  # every 4th order was approved
    finally:
        _stop_all(workers)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_worker_joining_takes_partitions_without_any_step_running_twice(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, anyio_backend: str
) -> None:
    """A third worker joins while runs are active: the others hand its partitions over only
    after their running steps are recorded, so no step body runs twice."""
    trail = tmp_path / "trail"
    trail.touch()
    procs = [_worker(kafka_bootstrap, kafka_topic_prefix, trail) for _ in range(2)]
    try:
        storage = KafkaStorageBackend(
            kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=6
        )
        async with storage, Client(storage) as client:
            run_ids = [await client.start(worker_app.long_flow, f"j{i}") for i in range(40)]
            procs.append(_worker(kafka_bootstrap, kafka_topic_prefix, trail))
            results = [await client.result(r, timeout=90) for r in run_ids]
        assert results == [10] * 40
        lines = trail.read_text().splitlines()
        assert sorted(lines) == sorted(f"j{i} {j}" for i in range(40) for j in range(5))
    finally:
        _stop_all(procs)
    logs = _logs(tmp_path, 3)
    # The joiner got partitions while the runs were under way (they take ~5 s each).
    assert "partitions_assigned" in logs[2]
    assert any("partitions_revoked" in log for log in logs[:2])
    # ...and started from the checkpoints the others wrote as they handed them over.
    assert "kafka_checkpoint_restored" in logs[2]
