"""``python -m tests.values_child BACKEND BASE start WORKFLOW [ARG]`` prints the new run's id;
``... BASE resume RUN_ID`` prints the run's result as JSON. Tests call :func:`run_child`.

Runs ``tests/values_app.py`` on a ``FileStorageBackend`` at BASE, on the anyio BACKEND
(asyncio or trio), with a virtual clock that a resume sets one hour later, so a sleep of
the first process is due in the second.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec

from pyworkflow import configure, get_workflow_run, resume, start
from pyworkflow._execution._registry import registry
from pyworkflow.storage import FileStorageBackend
from pyworkflow.testing import ManualClock

from . import values_app  # noqa: F401  (registers the workflows)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


async def run_child(backend: str, base: Path, *args: str) -> str:
    """Run this module in a fresh process; its stdout, stripped."""
    done = await anyio.run_process(
        [sys.executable, "-m", "tests.values_child", backend, str(base), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode().strip()


async def main(base: str, command: str, *rest: str) -> None:
    later = command == "resume"
    configure(
        storage=FileStorageBackend(Path(base)),
        clock=ManualClock(T0 + timedelta(hours=1) if later else T0),
    )
    if command == "start":
        wf = registry.workflow(rest[0])
        assert wf is not None, rest[0]
        print(await start(wf, *rest[1:]))
        return
    run_id = rest[0]
    await resume(run_id)
    run = await get_workflow_run(run_id)
    assert run is not None
    out: dict[str, Any] = {"status": run.status.value, "result": run.result, "error": run.error}
    print(msgspec.json.encode(out).decode())


if __name__ == "__main__":
    backend, *args = sys.argv[1:]
    anyio.run(main, *args, backend=backend)
