"""Schedules: what a schedule is (its spec, overlap policy and record) and when it is due.

A schedule's due times are a pure function of its spec and its *anchor* (``spec.start_at``,
else the record's ``created_at``): ``due_after(spec, anchor, moment)`` is the first due time
strictly after ``moment``. The record (``schedules/{schedule_id}.json`` in the file backend) is
written by the scheduler and by the schedule API with a compare-and-set on ``revision``.
"""


import enum
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from .._exceptions import ConfigurationError
from ._durations import parse_duration

__all__ = [
    "OverlapPolicy",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
    "check_schedule_id",
    "count_due",
    "due_after",
    "latest_due",
]

_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
_COUNT_LIMIT = 10_000


class OverlapPolicy(enum.StrEnum):
    """What a due time does while an earlier run of the same schedule is unfinished."""

    SKIP = "skip"
    """Start nothing for this due time (counted in ``skipped_runs``)."""
    BUFFER_ONE = "buffer_one"
    """Keep this due time and start its run once the running ones have ended; while one due
    time is kept, further ones are skipped (at most one run waits)."""
    ALLOW_ALL = "allow_all"
    """Start the run anyway: runs of the schedule may overlap."""
    CANCEL_OTHER = "cancel_other"
    """Request the cancellation of the unfinished runs (they run their cleanup), then start
    the new run at once, without waiting for them to end."""


class ScheduleStatus(enum.StrEnum):
    """Whether a schedule fires."""

    ACTIVE = "active"
    PAUSED = "paused"
    """Fires nothing; ``resume_schedule`` fires again from the next due time after it
    (the times that passed while paused are not caught up)."""


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True):
    """When a schedule is due: a 5-field ``cron`` expression or an ``interval``.

    Args:
        cron: ``"minute hour day-of-month month day-of-week"``, e.g. ``"*/15 * * * *"``,
            evaluated in ``timezone`` (daylight-saving changes as cron does them).
        interval: a duration as ``sleep()`` takes it (``"30s"``, ``"5m"``, ``"1h30m"``,
            seconds, a ``timedelta``); stored as seconds. Due at ``anchor + k * interval``,
            the anchor being ``start_at`` or else the schedule's creation time.
        timezone: an IANA time zone name for ``cron`` (``"Europe/Riga"``); default UTC.
        start_at: no due time before it (aware datetime).
        end_at: no due time after it (aware datetime); past it the schedule's
            ``next_run_time`` is None.

    Raises:
        ConfigurationError: neither or both of cron and interval, a cron that does not parse,
            an interval that is not a positive duration, an unknown time zone, naive or
            crossed start/end times. The message names the value.
    """

    cron: str | None = None
    interval: float | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            which = "both" if self.cron is not None else "neither"
            msg = (
                f"ScheduleSpec(cron={self.cron!r}, interval={self.interval!r}) sets {which} "
                "of cron and interval: pass exactly one, e.g. ScheduleSpec(cron='0 9 * * *') "
                "or ScheduleSpec(interval='5m')"
            )
            raise ConfigurationError(msg)
        zone = _zone(self.timezone)
        if self.cron is not None:
            _check_cron(self.cron, zone)
        else:
            msgspec.structs.force_setattr(self, "interval", _interval_seconds(self.interval))
        for name in ("start_at", "end_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
                msg = f"ScheduleSpec({name}={value!r}): pass an aware datetime (with a tzinfo)"
                raise ConfigurationError(msg)
        if self.start_at is not None and self.end_at is not None and self.end_at < self.start_at:
            msg = f"ScheduleSpec end_at={self.end_at!r} is before start_at={self.start_at!r}"
            raise ConfigurationError(msg)

    def describe(self) -> str:
        """``"cron '*/5 * * * *' (UTC)"`` or ``"every 300s"``, for people."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone})"
        return f"every {self.interval:g}s"


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule's record: what it starts, when, and what its runs did.

    ``running_run_ids`` are the runs it started whose outcome is not yet counted in
    ``successful_runs``/``failed_runs`` (a cancelled run counts as failed). ``buffered_time``
    is the due time a ``BUFFER_ONE`` schedule keeps for when its running run ends.
    ``revision`` grows by one with every write (the storage's compare-and-set).
    """

    schedule_id: str
    workflow_name: str
    spec: ScheduleSpec
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    status: ScheduleStatus = ScheduleStatus.ACTIVE
    args: Any = msgspec.field(default_factory=list)
    """The run's positional arguments, in their JSON form (as the workflow's codec wrote them)."""
    kwargs: Any = msgspec.field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    next_run_time: datetime | None = None
    """The next due time (UTC); None once past ``spec.end_at``."""
    last_run_at: datetime | None = None
    """When the schedule last started a run (by a due time or ``trigger_schedule``)."""
    last_run_id: str | None = None
    total_runs: int = 0
    successful_runs: int = 0
    failed_runs: int = 0
    skipped_runs: int = 0
    """Due times that started nothing: by the overlap policy, or missed while no scheduler
    ran (see ``catch-up`` in ``pyworkflow._execution._scheduling``)."""
    running_run_ids: tuple[str, ...] = ()
    buffered_time: datetime | None = None
    revision: int = 1

    @property
    def anchor(self) -> datetime:
        """Where an interval schedule's due times count from."""
        return self.spec.start_at or self.created_at


def due_after(spec: ScheduleSpec, anchor: datetime, moment: datetime) -> datetime | None:
    """The first due time strictly after ``moment`` (UTC), or None past ``spec.end_at``."""
    if spec.start_at is not None and moment < spec.start_at:
        moment = spec.start_at - timedelta(microseconds=1)
    if spec.interval is not None:
        step = timedelta(seconds=spec.interval)
        k = max(0, math.floor((moment - anchor) / step) + 1)
        due = anchor + k * step
    else:
        assert spec.cron is not None
        local = moment.astimezone(_zone(spec.timezone))
        due = next(iter(CronSim(spec.cron, local)))
    due = due.astimezone(UTC)
    if spec.end_at is not None and due > spec.end_at:
        return None
    return due


def latest_due(spec: ScheduleSpec, anchor: datetime, first: datetime, now: datetime) -> datetime:
    """The latest due time in ``[first, now]`` (``first``, a due time <= ``now``, if no later
    one is)."""
    if spec.interval is not None:
        step = timedelta(seconds=spec.interval)
        latest = anchor + math.floor((now - anchor) / step) * step
    else:
        assert spec.cron is not None
        local = now.astimezone(_zone(spec.timezone))
        latest = next(iter(CronSim(spec.cron, local + timedelta(microseconds=1), reverse=True)))
    latest = latest.astimezone(UTC)
    if spec.end_at is not None and latest > spec.end_at:
        return first  # not worth a search: the catch-up then fires the first missed time
    return max(first, latest)


def count_due(spec: ScheduleSpec, anchor: datetime, first: datetime, last: datetime) -> int:
    """How many due times lie in ``[first, last)`` (both due times); at most 10,000 are
    counted for a cron."""
    if spec.interval is not None:
        return round((last - first) / timedelta(seconds=spec.interval))
    assert spec.cron is not None
    count, moment = 0, first
    while moment < last and count < _COUNT_LIMIT:
        count += 1
        following = due_after(spec, anchor, moment)
        if following is None:
            break
        moment = following
    return count


def check_schedule_id(value: object) -> str:
    """``value`` if it can name a schedule in every backend (a file name, a Kafka key)."""
    if isinstance(value, str) and _ID.fullmatch(value) and ".." not in value:
        return value
    msg = (
        f"invalid schedule id {value!r}: use 1-200 letters, digits, '_', '.' or '-' (not "
        "starting with '.', no '..'), or pass schedule_id=None to get a generated one"
    )
    raise ConfigurationError(msg)


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        msg = f"ScheduleSpec(timezone={name!r}): pass an IANA time zone name such as 'UTC'"
        raise ConfigurationError(msg)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = (
            f"ScheduleSpec(timezone={name!r}) is not a known time zone: pass an IANA name "
            "such as 'UTC', 'Europe/Riga' or 'America/New_York' (on systems without time "
            "zone data, pip install tzdata)"
        )
        raise ConfigurationError(msg) from exc


def _check_cron(expr: object, zone: ZoneInfo) -> None:
    problem = None
    if not isinstance(expr, str):
        problem = "it is not a string"
    elif len(expr.split()) != 5:
        problem = f"it has {len(expr.split())} fields, not 5"
    else:
        try:
            CronSim(expr, datetime(2025, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            problem = str(exc).lower()
    if problem is not None:
        msg = (
            f"ScheduleSpec(cron={expr!r}) is not a valid cron expression ({problem}): use 5 "
            "fields 'minute hour day-of-month month day-of-week', e.g. '*/15 * * * *' or "
            "'0 9 * * 1-5'"
        )
        raise ConfigurationError(msg)


def _interval_seconds(value: Any) -> float:
    try:
        seconds = parse_duration(value, what="ScheduleSpec interval")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if seconds <= 0:
        msg = f"ScheduleSpec(interval={value!r}): pass a duration > 0, e.g. '30s' or '1h'"
        raise ConfigurationError(msg)
    return seconds
