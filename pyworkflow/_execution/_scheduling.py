"""Firing schedules: exactly one run per due time, across crashes of the scheduler.

**Exactly once per due time.** The run started for due time ``T`` of schedule ``S`` has the
id :func:`scheduled_run_id` ``(S, T)`` (a hash: the same in every process; on Kafka in
``S``'s partition, whose owner fires ``S``), and its ``workflow_started`` is appended with
``expected_sequence=0`` (``_linked.start_linked``): a second start of it conflicts and
starts nothing. The schedule's record moves ``next_run_time`` past ``T`` only after that
append returned. A scheduler killed between the two finds ``T`` still due, sees its run
exists and records it (it is *adopted*, whatever the overlap policy says now): one run.

**Catch-up.** When a scheduler finds ``next_run_time`` more than one due time in the past
(no scheduler ran, or the schedule's record was not reachable), it fires the *latest* due
time that has passed, once, and skips the earlier ones (counted in ``skipped_runs``, logged
as ``schedule_times_missed``). The skip is recorded (``next_run_time`` set to the latest
time) before that time's run starts, so a crash in between never fires a skipped time.
Times that pass while a schedule is paused are not caught up: ``resume_schedule`` moves
``next_run_time`` to the first due time after the resume.

**Overlap.** Before deciding, the scheduler counts the runs of ``running_run_ids`` that
have finished (``successful_runs``/``failed_runs``; a run that continued as new is followed
to its successor) and drops them from the set; the rest are unfinished, and the schedule's
:class:`~pyworkflow.OverlapPolicy` decides. Every change to a record is a compare-and-set
on its ``revision``; a conflict (a pause, a trigger, another scheduler) re-reads the record
and decides again.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from .._core._events import WorkflowStarted
from .._core._records import RunStatus
from .._core._schedule import (
    OverlapPolicy,
    Schedule,
    ScheduleStatus,
    count_due,
    due_after,
    latest_due,
)
from .._exceptions import ConflictError, ScheduleNotFoundError
from ._linked import derived_id, placement, start_linked
from ._registry import registry

if TYPE_CHECKING:
    from .._logging import Logger
    from ..storage import StorageBackend
    from ._clock import Clock

__all__ = ["Launcher", "ScheduleFirer", "scheduled_run_id"]

_RETRIES = 20
_JSON = msgspec.json.Encoder()


class Launcher(Protocol):
    """Who executes the runs a scheduler starts (a Supervisor, or the calling task)."""

    async def launch(self, run_id: str) -> None:
        """Execute ``run_id``, whose ``workflow_started`` was just written."""
        ...

    async def request_cancel(self, run_id: str, reason: str) -> None:
        """Ask for ``run_id``'s cancellation (``OverlapPolicy.CANCEL_OTHER``)."""
        ...


def scheduled_run_id(
    schedule_id: str, due: datetime, partition_of: Callable[[str], int] | None = None
) -> str:
    """The id of the run that ``schedule_id`` starts for due time ``due``."""
    return derived_id(f"schedule:{schedule_id}:{due.isoformat()}", schedule_id, partition_of)


class ScheduleFirer:
    """Fires the due schedules of one storage (see the module docstring)."""

    def __init__(
        self, storage: StorageBackend, clock: Clock, log: Logger, launcher: Launcher
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.log = log
        self.launcher = launcher
        self._placement = placement(storage)

    async def tick(self, owns: Callable[[str], bool] = lambda _: True) -> datetime | None:
        """Fire every schedule that ``owns`` selects and that is due now; return the earliest
        ``next_run_time`` among the active ones (None: none)."""
        earliest = None
        for listed in await self.storage.list_schedules():
            if not owns(listed.schedule_id):
                continue
            schedule = await self._retrying(listed, self._fire)
            if schedule is None or schedule.status is not ScheduleStatus.ACTIVE:
                continue
            due = schedule.next_run_time
            if due is not None and (earliest is None or due < earliest):
                earliest = due
        return earliest

    async def trigger(self, schedule_id: str) -> str:
        """Start a run of the schedule now, whatever its status and overlap policy; return
        its id (the caller launches it).

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        seed = f"schedule:{schedule_id}:trigger:{secrets.token_hex(8)}"
        run_id = derived_id(seed, schedule_id, self._placement)
        for _ in range(_RETRIES):
            schedule = await self.storage.get_schedule(schedule_id)
            if schedule is None:
                raise ScheduleNotFoundError(schedule_id)
            now = self.clock.now()
            await self._start(schedule, run_id, now)
            try:
                await self._save(_with_run(schedule, run_id, now))
            except ConflictError:
                continue
            return run_id
        raise ConflictError(_busy(schedule_id))

    # -- one schedule -------------------------------------------------------------------
    async def _retrying(
        self, schedule: Schedule, action: Callable[[Schedule], Awaitable[Schedule]]
    ) -> Schedule | None:
        for _ in range(_RETRIES):
            try:
                return await action(schedule)
            except ConflictError:
                fresh = await self.storage.get_schedule(schedule.schedule_id)
                if fresh is None:
                    return None  # deleted meanwhile
                schedule = fresh
        self.log.warning("schedule_busy", schedule_id=schedule.schedule_id)
        return schedule

    async def _fire(self, schedule: Schedule) -> Schedule:
        schedule = await self._settle(schedule)
        if schedule.status is not ScheduleStatus.ACTIVE:
            return schedule
        now = self.clock.now()
        if schedule.buffered_time is not None and not schedule.running_run_ids:
            due = schedule.buffered_time
            run_id = scheduled_run_id(schedule.schedule_id, due, self._placement)
            if await self._start(schedule, run_id, now, due):
                await self.launcher.launch(run_id)
            schedule = await self._save(_with_run(schedule, run_id, now, buffered_time=None))
        while schedule.next_run_time is not None and schedule.next_run_time <= now:
            schedule = await self._due(schedule, schedule.next_run_time, now)
        return schedule

    async def _due(self, schedule: Schedule, due: datetime, now: datetime) -> Schedule:
        """Decide due time ``due`` (<= ``now``) and record the decision."""
        run_id = scheduled_run_id(schedule.schedule_id, due, self._placement)
        run = await self.storage.get_run(run_id)
        if run is not None:  # started before a crash: record it, start nothing
            self.log.info("schedule_run_adopted", schedule_id=schedule.schedule_id, run_id=run_id)
            return await self._save(_with_run(_past(schedule, due), run_id, run.created_at))
        latest = latest_due(schedule.spec, schedule.anchor, due, now)
        if latest > due:
            missed = count_due(schedule.spec, schedule.anchor, due, latest)
            self.log.warning(
                "schedule_times_missed",
                schedule_id=schedule.schedule_id,
                first=due.isoformat(),
                fired=latest.isoformat(),
                missed=missed,
            )
            skipped = schedule.skipped_runs + missed
            return await self._save(_replace(schedule, next_run_time=latest, skipped_runs=skipped))
        policy, unfinished = schedule.overlap_policy, schedule.running_run_ids
        if unfinished and policy is OverlapPolicy.SKIP:
            return await self._save(_past(schedule, due, skipped=1))
        if unfinished and policy is OverlapPolicy.BUFFER_ONE:
            if schedule.buffered_time is None:
                return await self._save(_replace(_past(schedule, due), buffered_time=due))
            return await self._save(_past(schedule, due, skipped=1))
        if unfinished and policy is OverlapPolicy.CANCEL_OTHER:
            reason = f"schedule {schedule.schedule_id!r} started its run for {due.isoformat()}"
            for other in unfinished:
                await self.launcher.request_cancel(other, reason)
        if await self._start(schedule, run_id, now, due):
            await self.launcher.launch(run_id)
        return await self._save(_with_run(_past(schedule, due), run_id, now))

    async def _start(
        self, schedule: Schedule, run_id: str, now: datetime, due: datetime | None = None
    ) -> bool:
        """Append the run's ``workflow_started`` (idempotent); whether this call wrote it."""
        wf = registry.workflow(schedule.workflow_name)
        started = WorkflowStarted(
            run_id=run_id,
            sequence=1,
            timestamp=now,
            workflow_name=schedule.workflow_name,
            args=msgspec.Raw(_JSON.encode(schedule.args)),
            kwargs=msgspec.Raw(_JSON.encode(schedule.kwargs)),
            tags=wf.tags if wf is not None else (),
            schedule_id=schedule.schedule_id,
            scheduled_time=due if due is not None else now,
        )
        created = await start_linked(
            self.storage, started, lambda first: first.schedule_id == schedule.schedule_id
        )
        if created:
            self.log.info(
                "schedule_fired", schedule_id=schedule.schedule_id, run_id=run_id, due=str(due)
            )
        return created

    async def _settle(self, schedule: Schedule) -> Schedule:
        """Count the runs of ``running_run_ids`` that have finished, and drop them."""
        if not schedule.running_run_ids:
            return schedule
        still: list[str] = []
        ok = failed = 0
        for run_id in schedule.running_run_ids:
            run = await self.storage.get_run(run_id)
            while run is not None and run.continued_to_run_id is not None:
                successor = await self.storage.get_run(run.continued_to_run_id)
                if successor is None:  # its start is not written yet: look again later
                    break
                run = successor
            if run is None or not run.status.is_finished:
                still.append(run.run_id if run is not None else run_id)
            elif run.status is RunStatus.COMPLETED:
                ok += 1
            elif run.status is not RunStatus.CONTINUED_AS_NEW:
                failed += 1
            else:
                still.append(run.run_id)
        if tuple(still) == schedule.running_run_ids:
            return schedule
        return await self._save(
            _replace(
                schedule,
                running_run_ids=tuple(still),
                successful_runs=schedule.successful_runs + ok,
                failed_runs=schedule.failed_runs + failed,
            )
        )

    async def _save(self, schedule: Schedule) -> Schedule:
        saved = _replace(schedule, revision=schedule.revision + 1, updated_at=self.clock.now())
        await self.storage.save_schedule(saved)
        return saved


def _replace(schedule: Schedule, **changes: object) -> Schedule:
    return msgspec.structs.replace(schedule, **changes)


def _past(schedule: Schedule, due: datetime, *, skipped: int = 0) -> Schedule:
    """``schedule`` with ``next_run_time`` moved past ``due``."""
    return _replace(
        schedule,
        next_run_time=due_after(schedule.spec, schedule.anchor, due),
        skipped_runs=schedule.skipped_runs + skipped,
    )


def _with_run(
    schedule: Schedule, run_id: str, at: datetime, **changes: object
) -> Schedule:
    """``schedule`` with run ``run_id``, started at ``at``, counted and running."""
    running = schedule.running_run_ids
    if run_id in running:
        return _replace(schedule, **changes)
    return _replace(
        schedule,
        total_runs=schedule.total_runs + 1,
        last_run_at=at,
        last_run_id=run_id,
        running_run_ids=(*running, run_id),
        **changes,
    )


def _busy(schedule_id: str) -> str:
    return (
        f"schedule {schedule_id!r} kept changing under this call ({_RETRIES} conflicting "
        "writes in a row): try again"
    )
