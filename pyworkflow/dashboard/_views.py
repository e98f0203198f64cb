"""What the pages show, read from the storage: a page of runs, one run with its events.

Only reads; the values are plain Python for the templates, which escape every one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msgspec

from .._api import get_workflow_chain
from .._cli._output import event_details, fmt_duration, fmt_time, fmt_value
from .._cli._runs import describe_waiting
from .._core._events import Event, WorkflowFailed
from .._core._records import HookRecord, HookStatus, RunStatus, WorkflowRun
from .._core._replay import fold
from .._exceptions import ConfigurationError
from ..storage import StorageBackend
from ._timeline import Timeline, build_timeline

__all__ = ["RunView", "RunsQuery", "RunsView", "load_run", "load_runs"]

_RUN_ID = re.compile(r"run_[0-9a-f]{16}")
_STATUSES = frozenset(s.value for s in RunStatus)
SEARCH_DEPTH = 5000
"""Runs read, newest first, when searching by idempotency key (no backend indexes keys)."""


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """The list page's URL parameters, checked."""

    status: RunStatus | None = None
    workflow: str | None = None
    search: str | None = None
    cursor: str | None = None
    limit: int = 50

    @classmethod
    def parse(cls, params: Any, *, default: int, most: int) -> RunsQuery:
        status = str(params.get("status") or "")
        try:
            limit = int(params.get("limit") or default)
        except ValueError:
            limit = default
        return cls(
            status=RunStatus(status) if status in _STATUSES else None,
            workflow=(params.get("workflow") or "").strip() or None,
            search=(params.get("q") or "").strip() or None,
            cursor=params.get("cursor") or None,
            limit=min(max(limit, 1), most),
        )

    def link(self, **change: Any) -> str:
        """This query's URL with ``change`` applied (None drops a parameter)."""
        values = {
            "status": self.status.value if self.status else None,
            "workflow": self.workflow,
            "q": self.search,
            "cursor": self.cursor,
            "limit": self.limit,
        }
        values.update(change)
        return "/?" + "&".join(
            f"{k}={_quote(str(v))}" for k, v in values.items() if v is not None
        )


    def live_link(self) -> str:
        """The URL of this query's live stream."""
        return "/live/runs" + self.link()[1:]


def _quote(text: str) -> str:
    return quote(text, safe="")


@dataclass(slots=True)
class RunsView:
    runs: list[WorkflowRun]
    next_cursor: str | None
    note: str = ""


def _matches(query: RunsQuery, run: WorkflowRun) -> bool:
    return (query.status is None or run.status is query.status) and (
        query.workflow is None or run.workflow_name == query.workflow
    )


async def load_runs(storage: StorageBackend, query: RunsQuery) -> RunsView:
    """One page of runs for ``query``: a run id finds that run, other text is looked up as
    an idempotency key among the newest ``SEARCH_DEPTH`` runs."""
    if query.search is None:
        try:
            page = await storage.list_runs(
                status=query.status, workflow_name=query.workflow, limit=query.limit,
                cursor=query.cursor,
            )  # fmt: skip
        except ConfigurationError as exc:  # a cursor edited by hand
            return RunsView([], None, str(exc))
        return RunsView(page.runs, page.next_cursor)
    if _RUN_ID.fullmatch(query.search):
        run = await storage.get_run(query.search)
        found = [run] if run is not None and _matches(query, run) else []
        return RunsView(found, None, "" if found else f"no run {query.search}")
    return await _by_key(storage, query)


async def _by_key(storage: StorageBackend, query: RunsQuery) -> RunsView:
    found: list[WorkflowRun] = []
    cursor, read = None, 0
    while read < SEARCH_DEPTH:
        page = await storage.list_runs(
            status=query.status, workflow_name=query.workflow, limit=500, cursor=cursor
        )
        read += len(page.runs)
        found += [r for r in page.runs if r.idempotency_key == query.search]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    note = "" if found else f"no run with idempotency key {query.search!r}"
    if not found and read >= SEARCH_DEPTH:
        note += f" among the newest {SEARCH_DEPTH} runs"
    return RunsView(found[: query.limit], None, note)


@dataclass(slots=True)
class RunView:
    """One run's page: its record, what it waits for, its chain and children, timeline and
    events."""

    run: WorkflowRun
    events: list[Event]
    rows: list[tuple[int, str, str, str]]
    """``(sequence, time, type, details)`` per event."""
    waiting: list[dict[str, Any]]
    hooks: list[HookRecord]
    """Its pending hooks."""
    chain: list[WorkflowRun]
    children: list[WorkflowRun]
    timeline: Timeline
    traceback: str = ""
    duration: str = ""
    args: str = ""
    result: str = ""

    @property
    def due(self) -> bool:
        """Whether resuming it now would do something (a timer is due, or it crashed)."""
        return any(w.get("due_in_seconds", 1) <= 0 for w in self.waiting) or (
            self.run.status is RunStatus.RUNNING
        )


async def load_run(storage: StorageBackend, run_id: str, now: datetime) -> RunView | None:
    """Everything the run page shows, or None for an unknown run."""
    run = await storage.get_run(run_id)
    if run is None:
        return None
    events = await storage.read(run_id)
    waiting = describe_waiting(fold(run_id, events), now) if events else []
    hooks = [h for h in await storage.list_hooks(run_id) if h.status is HookStatus.PENDING]
    chain: list[WorkflowRun] = []
    if run.continued_from_run_id or run.continued_to_run_id:
        chain = await get_workflow_chain(run_id, storage=storage)
    children = await storage.get_children(run_id)
    failed = [e for e in events if isinstance(e, WorkflowFailed)]
    end = run.completed_at or now
    return RunView(
        run=run,
        events=events,
        rows=[
            (e.sequence, fmt_time(e.timestamp), e.type.value, event_details(e)) for e in events
        ],
        waiting=waiting,
        hooks=hooks,
        chain=chain,
        children=children,
        timeline=build_timeline(events, now),
        traceback=failed[-1].traceback if failed else "",
        duration=fmt_duration((end - run.created_at).total_seconds()),
        args=fmt_value(run.args, 2000) + (f" {fmt_value(run.kwargs, 2000)}" if run.kwargs else ""),
        result=_pretty(run.result) if run.status is RunStatus.COMPLETED else "",
    )


def _pretty(value: Any) -> str:
    encoded = msgspec.json.encode(value, enc_hook=repr)
    text = msgspec.json.format(encoded, indent=2).decode()
    return text if len(text) <= 20_000 else text[:20_000] + "\n..."
