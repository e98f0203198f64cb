"""A worker process that stops for good before one append, to be SIGKILLed there:
``python -m tests.kafka._pausing_worker BOOTSTRAP PREFIX`` (from the repo root).

It is what ``pyworkflow worker --app tests.kafka.worker_app`` runs (a ``Worker`` on a
``KafkaStorageBackend``, info logs on stderr), with the backend's ``append`` of a run's
events that include an event of type ``$PAUSE_BEFORE`` held forever, in the first worker
process to get there: it creates the file ``$PAUSE_FLAG`` (holding its pid) and waits; the
other workers, seeing a flag that is not theirs, append as usual.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import anyio

from pyworkflow import configure
from pyworkflow._core._events import Event
from pyworkflow.actors import Worker
from pyworkflow.storage import KafkaStorageBackend

from . import worker_app  # noqa: F401 - its workflows register

SESSION_TIMEOUT = 6


def _pauses_here(flag: str) -> bool:
    """Whether this process is the one that pauses (the first to create ``flag``)."""
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(flag) as held:
            return held.read() == str(os.getpid())
    with os.fdopen(fd, "w") as created:
        created.write(str(os.getpid()))
    return True


class PausingKafka(KafkaStorageBackend):
    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        pause = os.environ["PAUSE_BEFORE"]
        if any(e.type.value == pause for e in events) and _pauses_here(os.environ["PAUSE_FLAG"]):
            await anyio.sleep_forever()  # until SIGKILL
        await super().append(run_id, events, expected_sequence=expected_sequence)


async def main(bootstrap: str, prefix: str) -> None:
    configure(log_level="info")
    storage = PausingKafka(bootstrap, topic_prefix=prefix)
    async with Worker(storage, session_timeout=SESSION_TIMEOUT, grace_period=5) as worker:
        await worker.serve()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:3], backend="trio")
