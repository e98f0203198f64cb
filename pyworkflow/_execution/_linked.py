"""Runs that a run makes (its successor, its children): ids derived from the maker's, and
an idempotent start, so that a crash between making the run and recording it never makes
two.

Both rest on one rule. The new run's id is a pure function of the maker's id and of where
in the maker the call is (:func:`derived_id`), so every execution of the maker that reaches
the call names the same run. Its ``workflow_started`` is appended with
``expected_sequence=0`` (:func:`start_linked`): a second append of it conflicts, changes
nothing, and is checked to be the maker's own (not a stranger's run under that id).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._core._events import WorkflowStarted
from .._exceptions import ConflictError, CorruptRecordError, RunLockedError

if TYPE_CHECKING:
    from ..storage import StorageBackend

__all__ = ["derived_id", "placement", "start_linked"]


def placement(storage: object) -> Callable[[str], int] | None:
    """How ``storage`` places runs by id (``KafkaStorageBackend.partition_of``), if it does."""
    return getattr(storage, "partition_of", None)


def derived_id(
    seed: str, home_run_id: str, partition_of: Callable[[str], int] | None = None
) -> str:
    """A run id that is the same in every execution: a hash of ``seed``.

    With ``partition_of`` (a storage that places runs by id: Kafka), the id lands in the
    partition of ``home_run_id``, so the worker that owns that run owns the new one too (it
    folds, fences and executes that partition only): candidates are tried in a fixed order.
    """
    home = None if partition_of is None else partition_of(home_run_id)
    for n in itertools.count():
        text = seed if n == 0 else f"{seed}:{n}"
        candidate = f"run_{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}"
        if partition_of is None or partition_of(candidate) == home:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


async def start_linked(
    storage: StorageBackend, started: WorkflowStarted, ours: Callable[[WorkflowStarted], bool]
) -> bool:
    """Append ``started`` as the first event of its run; whether this call wrote it.

    A run already there is accepted if ``ours(its workflow_started)``: an execution that
    crashed before recording it wrote it.

    Raises:
        CorruptRecordError: the id holds a run that ``ours`` rejects.
        StorageError / RunLockedError: as the append raised them.
    """
    try:
        await storage.append(started.run_id, [started], expected_sequence=0)
    except RunLockedError:
        raise
    except ConflictError:
        first = (await storage.read(started.run_id, after=0))[:1]
        if not first and await storage.get_run(started.run_id) is not None:
            # The run is there but its log is not held here (a Kafka worker's backend drops
            # a finished run's log, keeping its record): it ended; a derived id is the
            # maker's (a hash of where the maker made it).
            return False
        if not first or not isinstance(first[0], WorkflowStarted) or not ours(first[0]):
            msg = (
                f"run id {started.run_id!r} holds a run that was not made where it is "
                "derived from (a run of its own under a derived id?)"
            )
            raise CorruptRecordError(msg) from None
        return False
    return True
