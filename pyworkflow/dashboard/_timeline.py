"""A run's timeline: one bar per step attempt, sleep, hook wait and retry delay, laid out
for the inline SVG of the run page (``templates/_timeline.svg``).

A pure function of the run's events and the time now: the server draws it, the browser only
shows it. Bars still open (a step in flight, a sleep or hook not yet over) end at ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .._cli._output import fmt_duration, fmt_time
from .._core._events import (
    Event,
    HookCreated,
    HookExpired,
    HookReceived,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepStarted,
)
from .._follow import is_final

__all__ = ["Bar", "Timeline", "build_timeline"]

Kind = Literal["step", "sleep", "hook", "retry"]
Outcome = Literal["ok", "failed", "retried", "open", "expired"]

LABEL_WIDTH = 220
PLOT_WIDTH = 640
ROW = 22
TOP = 24


@dataclass(slots=True)
class Bar:
    """One span of the run: what, when, how it ended, and where it is drawn."""

    kind: Kind
    label: str
    start: datetime
    end: datetime | None = None
    outcome: Outcome = "open"
    detail: str = ""
    x: float = 0.0
    width: float = 0.0
    y: float = 0.0

    @property
    def css(self) -> str:
        return f"bar {self.kind} {self.outcome}"

    @property
    def title(self) -> str:
        end = fmt_time(self.end) if self.end else "now"
        span = fmt_duration(((self.end or self.start) - self.start).total_seconds())
        when = f"{fmt_time(self.start)} to {end} ({span})"
        return f"{self.label}: {self.outcome}, {when} {self.detail}".rstrip()


@dataclass(slots=True)
class Timeline:
    """Bars with their coordinates, and the axis' ticks ``(x, label)``."""

    bars: list[Bar]
    ticks: list[tuple[float, str]]
    width: int
    height: int
    label_width: int = LABEL_WIDTH


def build_timeline(events: Sequence[Event], now: datetime) -> Timeline:
    """The timeline of a run with ``events``, drawn up to ``now`` if it is not finished."""
    bars = _bars(events)
    if not events:
        return Timeline([], [], LABEL_WIDTH + PLOT_WIDTH + 90, TOP)
    t0 = events[0].timestamp
    t1 = events[-1].timestamp if is_final(events) else max(now, events[-1].timestamp)
    t1 = max([t1, *(b.end for b in bars if b.end is not None)])
    span = max((t1 - t0).total_seconds(), 1e-3)

    def x_of(moment: datetime) -> float:
        return LABEL_WIDTH + PLOT_WIDTH * (moment - t0).total_seconds() / span

    for row, bar in enumerate(bars):
        bar.x = round(x_of(bar.start), 1)
        bar.width = round(max(x_of(bar.end or t1) - bar.x, 2.0), 1)
        bar.y = TOP + row * ROW
    ticks = [
        (round(LABEL_WIDTH + PLOT_WIDTH * i / 4, 1), "+" + fmt_duration(span * i / 4))
        for i in range(5)
    ]
    return Timeline(bars, ticks, LABEL_WIDTH + PLOT_WIDTH + 90, TOP + len(bars) * ROW + 8)


def _bars(events: Sequence[Event]) -> list[Bar]:
    """The bars in the order they started; open ones keep ``end=None``."""
    bars: list[Bar] = []
    steps: dict[tuple[int, int], Bar] = {}
    waits: dict[int, Bar] = {}  # sleeps and hooks by checkpoint
    for event in events:
        match event:
            case StepStarted():
                bar = Bar("step", f"{event.step_name} #{event.attempt}", event.timestamp)
                steps[event.checkpoint, event.attempt] = bar
                bars.append(bar)
            case StepCompleted() | StepFailed():
                found = steps.pop((event.checkpoint, event.attempt), None)
                bar = found or _orphan(bars, event.step_name, event.attempt, event.timestamp)
                bar.end = event.timestamp
                if isinstance(event, StepCompleted):
                    bar.outcome = "ok"
                else:
                    bar.outcome = "failed" if event.final else "retried"
                    bar.detail = f"{event.error_type}: {event.error_message}"
            case StepRetrying():
                detail = f"attempt {event.attempt} at {fmt_time(event.resume_at)}"
                label = f"{event.step_name} retry delay"
                bars.append(Bar("retry", label, event.timestamp, event.resume_at, "ok", detail))
            case SleepStarted():
                bar = Bar("sleep", f"sleep {fmt_duration(event.duration)}", event.timestamp)
                bar.detail = f"until {fmt_time(event.resume_at)}"
                waits[event.checkpoint] = bar
                bars.append(bar)
            case HookCreated():
                bar = Bar("hook", f"hook {event.hook_name}", event.timestamp)
                waits[event.checkpoint] = bar
                bars.append(bar)
            case SleepCompleted() | HookReceived() | HookExpired():
                found = waits.pop(event.checkpoint, None)
                bar = found or _orphan(bars, "?", 0, event.timestamp)
                bar.end = event.timestamp
                bar.outcome = "expired" if isinstance(event, HookExpired) else "ok"
            case _:
                pass  # run-level events are the record's, not bars
    return bars


def _orphan(bars: list[Bar], name: str, attempt: int, at: datetime) -> Bar:
    """A bar for an outcome whose start is not in the log (a log cut by retention)."""
    bar = Bar("step", f"{name} #{attempt}" if attempt else name, at)
    bars.append(bar)
    return bar
