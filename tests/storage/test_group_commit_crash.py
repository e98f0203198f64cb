"""A process appending with group commits (``durability="always"``), killed with SIGKILL in
the middle of its batches: every append it acknowledged is in the log after the restart,
nothing half-written is accepted, and the runs go on. (A killed process keeps what the
page cache holds; power loss is what the barriers' order guards, ``test_group_commit``.)
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from pyworkflow.storage import FileStorageBackend

from ._group_crash_child import history

ROOT = Path(__file__).resolve().parents[2]
RUNS = 12
TIMEOUT = 30.0


def run_child_until(base: Path, acks: int) -> dict[str, int]:
    """Start the child, SIGKILL it once it acknowledged ``acks`` appends; the highest
    acknowledged sequence of each run."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage._group_crash_child", str(base), str(RUNS)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: dict[str, int] = {}
    seen, buffer = 0, b""
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        while seen < acks and time.monotonic() < deadline:
            if not sel.select(timeout=1):
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                run_id, seq = line.decode().split()
                acked[run_id] = max(acked.get(run_id, 0), int(seq))
                seen += 1
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    for line in (buffer + rest).split(b"\n"):
        if line.strip():  # a line written before the kill: acknowledged too
            run_id, seq = line.decode().split()
            acked[run_id] = max(acked.get(run_id, 0), int(seq))
    assert seen >= acks, err.decode()[-2000:]
    return acked


@pytest.mark.parametrize("acks", [40, 400, 1500])
def test_a_killed_group_commit_keeps_every_acknowledged_append(tmp_path: Path, acks: int) -> None:
    base = tmp_path / "data"
    acked = run_child_until(base, acks)

    async def check() -> None:
        backend = FileStorageBackend(base, durability="always")  # a fresh process's view
        for n in range(RUNS):
            expected = history(n)
            run_id = expected[0].run_id
            events = await backend.read(run_id)
            assert len(events) >= acked.get(run_id, 0)  # nothing acknowledged is lost
            assert events == expected[: len(events)]  # a clean prefix: nothing half-written
            if not events:
                continue
            run = await backend.get_run(run_id)
            assert run is not None and run.last_sequence == len(events)
            for event in events:
                step_id = getattr(event, "step_id", None)
                if step_id is not None:
                    step = await backend.get_step(step_id)
                    assert step is not None and step.step_id == step_id
            nxt = expected[len(events)]  # the run goes on where the log ends
            await backend.append(run_id, [nxt], expected_sequence=len(events))
            assert await FileStorageBackend(base).read(run_id, after=len(events)) == [nxt]

    anyio.run(check)
    leftovers = [p for p in (base / "steps").iterdir() if not p.name.endswith(".json")]
    assert all(p.name.startswith(".") for p in leftovers)  # temp files only, never read
