"""A child for the due-index crash tests: ``python -m tests.storage._due_crash_child BASE RUN_ID
POINT``, run from the repo root.

The run ``RUN_ID`` is suspended on a sleep in ``BASE`` (``suspended_on_sleep`` with a fresh
``History(RUN_ID)``: the same events the parent wrote). The child appends its
``workflow_resumed`` and SIGKILLs itself at ``POINT``:

* ``before-write``: the new ``.due/`` entry is made, the log line not yet written;
* ``after-write``: the log line is written, the old entry not yet removed.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from typing import Any

import anyio

from pyworkflow._core._events import WorkflowResumed
from pyworkflow.storage import FileStorageBackend
from pyworkflow.storage._file._append import AppendTx
from pyworkflow.storage._file._due import DueFolder

from .helpers import T0, History, suspended_on_sleep

WAKE = T0 + timedelta(hours=1)


def _die(*args: Any, **kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(base: str, run_id: str, point: str) -> None:
    h = History(run_id)
    suspended_on_sleep(h, WAKE)
    resumed = h.add(WorkflowResumed, reason="resume")
    if point == "before-write":
        AppendTx.write = _die  # type: ignore[method-assign]
    else:
        DueFolder.remove = _die  # type: ignore[method-assign]
    backend = FileStorageBackend(base)
    await backend.append(run_id, [resumed], expected_sequence=3)
    sys.exit("the child was not killed")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
