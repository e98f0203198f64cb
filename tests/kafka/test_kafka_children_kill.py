"""SIGKILL of the worker process that hosts a parent and its child (a child lives in its
parent's partition): the other worker takes the partition over, the child runs once, the
parent completes with its result, and every log folds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from pyworkflow import RunStatus
from pyworkflow._core._replay import fold
from pyworkflow._execution._children import child_id
from pyworkflow.actors import Client
from pyworkflow.storage import KafkaStorageBackend

from . import worker_app
from .test_kafka_worker_processes import ROOT, SESSION_TIMEOUT, _balanced, _stop_all, _worker


@dataclass(frozen=True)
class Kill:
    """Where the parent's worker dies."""

    pause_before: str | None
    """The event whose append the worker never makes (it is killed there); None: a
    ``pyworkflow worker``, killed while the child's step waits on the gate."""
    gate: bool
    """The child's step waits for the gate (opened once the worker is dead)."""
    begun: int
    """How many times the child's step body begins: a body killed at the gate is begun
    again by the next worker (at-least-once), its side effect (after the gate) is made once."""


KILLS = {
    "while_the_child_runs": Kill(pause_before=None, gate=True, begun=2),
    "before_the_parent_records_the_child_which_runs": Kill(
        "child_workflow_started", gate=True, begun=2
    ),
    # The child's step is recorded, and its end waits for the parent's owner (stuck).
    "before_the_parent_records_the_child_which_is_done": Kill(
        "child_workflow_started", gate=False, begun=1
    ),
    "before_the_parent_records_its_outcome": Kill("child_workflow_completed", gate=False, begun=1),
}


def _pausing_worker(
    bootstrap: str, prefix: str, trail: Path, pause_before: str
) -> subprocess.Popen[str]:
    """A worker (``tests.kafka._pausing_worker``) that, if first to append a
    ``pause_before`` event, stops there and writes its pid to ``trail``'s ``.paused``."""
    env = {
        **os.environ,
        "WORKER_TRAIL": str(trail),
        "PYTHONPATH": str(ROOT),
        "PAUSE_BEFORE": pause_before,
        "PAUSE_FLAG": str(trail.with_suffix(".paused")),
    }
    log = trail.parent / f"worker-{len(list(trail.parent.glob('worker-*.log')))}.log"
    command = [sys.executable, "-m", "tests.kafka._pausing_worker", bootstrap, prefix]
    with log.open("w") as stderr:
        return subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr, text=True)


async def _host_pid(kill: Kill, trail: Path, storage: KafkaStorageBackend, parent: str) -> int:
    """Wait for the kill point; the pid of the worker there."""
    with anyio.fail_after(30):
        while (pid := await _at_kill_point(kill, trail, storage, parent)) is None:  # noqa: ASYNC110
            await anyio.sleep(0.2)
    return pid


async def _at_kill_point(
    kill: Kill, trail: Path, storage: KafkaStorageBackend, parent: str
) -> int | None:
    """The pid of the worker at the kill point, if it is there: the child's step has begun
    on it (and waits on the gate, or, without a gate, is recorded in the child's log); and
    the worker is paused, or, without a pause, the parent has recorded the child."""
    lines = (await anyio.Path(trail).read_text()).splitlines()
    begun = [line for line in lines if " begun " in line]
    if not begun:
        return None
    if kill.pause_before is None:
        recorded = "child_workflow_started" in await _kinds(storage, parent)
        return int(begun[0].split()[-1]) if recorded else None
    paused = anyio.Path(trail.with_suffix(".paused"))
    pid = await paused.read_text() if await paused.exists() else ""
    kid = child_id(f"{parent}:2", parent, storage)  # its second checkpoint (after a step)
    if pid and (kill.gate or "step_completed" in await _kinds(storage, kid)):
        return int(pid)
    return None


async def _kinds(storage: KafkaStorageBackend, run_id: str) -> set[str]:
    return {e.type.value for e in await storage.read(run_id)}


@pytest.mark.parametrize("anyio_backend", ["trio"])  # the workers are processes: one loop
@pytest.mark.parametrize("where", list(KILLS))
async def test_a_parent_whose_worker_is_killed_after_starting_its_child_completes_with_the_child_run_once(  # noqa: E501
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, where: str, anyio_backend: str
) -> None:
    """Two workers; the one hosting the parent (and so its child) is SIGKILLed after the
    child's start: while the child's step runs (the parent recorded the child); before
    the parent's record of the child (the child's start is written), the child's step
    running or recorded; or before the child's outcome reaches the parent (the child's
    step is recorded, its end is not).
    The other worker takes the partition over: the parent completes with the child's
    result, the child's side effect is made once, one child run exists, logs fold."""
    kill = KILLS[where]
    trail = tmp_path / "trail"
    trail.touch()
    gate = tmp_path / "gate"
    spawn = _worker if kill.pause_before is None else _pausing_worker
    extra = () if kill.pause_before is None else (kill.pause_before,)
    procs = [spawn(kafka_bootstrap, kafka_topic_prefix, trail, *extra) for _ in range(2)]
    try:
        storage = KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix)
        async with storage, Client(storage) as client:
            await _balanced(tmp_path, 2)
            parent = await client.start(worker_app.parent_flow, "k", str(gate) if kill.gate else "")
            host = await _host_pid(kill, trail, storage, parent)
            (doomed,) = [p for p in procs if p.pid == host]
            doomed.kill()  # SIGKILL
            assert doomed.wait(timeout=10) == -9
            gate.touch()
            assert await client.result(parent, timeout=SESSION_TIMEOUT + 30) == "0 k child done"
        await _check_logs(kafka_bootstrap, kafka_topic_prefix, parent)
    finally:
        _stop_all(procs)
    # The parent's step was recorded before the child's start (write-ahead): never again.
    lines = Counter(" ".join(line.split()[:2]) for line in trail.read_text().splitlines())
    assert lines == {"k 0": 1, "k begun": kill.begun, "k child": 1}, lines
    survivor = next(p.pid for p in procs if p.pid != host)
    maker = survivor if kill.gate else host  # past the gate only once the host was dead
    assert f"k child {maker}" in trail.read_text().splitlines()


async def _check_logs(bootstrap: str, prefix: str, parent: str) -> None:
    """Read every log from the topic's start (a fresh backend): each folds, the parent
    has one child, started and ended once, and that child ran to its end once."""
    async with KafkaStorageBackend(bootstrap, topic_prefix=prefix, fold_history=True) as fresh:
        kid = child_id(f"{parent}:2", parent, fresh)  # its second checkpoint (after a step)
        runs = {r.run_id: r for r in (await fresh.list_runs()).runs}
        assert set(runs) == {parent, kid}  # nothing else was started
        assert [c.run_id for c in await fresh.get_children(parent)] == [kid]
        assert runs[kid].parent_run_id == parent
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETED}
        logs = {run_id: await fresh.read(run_id) for run_id in runs}
    for run_id, events in logs.items():
        fold(run_id, events)  # raises CorruptRecordError on a corrupt log
    kinds = Counter(e.type.value for e in logs[parent])
    assert kinds["child_workflow_started"] == kinds["child_workflow_completed"] == 1, kinds
    kinds = Counter(e.type.value for e in logs[kid])
    assert kinds["workflow_started"] == kinds["step_completed"] == 1, kinds
    assert logs[kid][-1].type.value == "workflow_completed"
