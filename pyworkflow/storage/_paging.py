"""Filtering and cursor paging of run records, newest first (shared by backends)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._core._records import RunPage, RunStatus, WorkflowRun
from .._exceptions import ConfigurationError

__all__ = ["check_limit", "cut_page", "page_runs", "parse_cursor", "sort_key"]


def sort_key(run: WorkflowRun) -> tuple[str, str]:
    """Newest-first order: by creation time, then run id (ISO strings sort as times)."""
    return (run.created_at.isoformat(), run.run_id)


def check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        msg = f"list_runs limit {limit!r} must be a positive integer"
        raise ConfigurationError(msg)


def parse_cursor(cursor: str | None) -> tuple[str, str] | None:
    """A page's ``next_cursor`` (``created_at|run_id``) as a ``sort_key``; None for none."""
    if cursor is None:
        return None
    created, sep, run_id = cursor.rpartition("|")
    if not sep or not created or not run_id:
        msg = f"malformed list_runs cursor {cursor!r}: pass the next_cursor of a previous page"
        raise ConfigurationError(msg)
    return created, run_id


def cut_page(selected: Sequence[WorkflowRun], limit: int) -> RunPage:
    """The first ``limit`` of ``selected`` (newest first), with a cursor if more follow."""
    page = list(selected[:limit])
    if len(selected) > limit:
        last = sort_key(page[-1])
        return RunPage(runs=page, next_cursor=f"{last[0]}|{last[1]}")
    return RunPage(runs=page)


def page_runs(
    runs: Iterable[WorkflowRun],
    *,
    status: RunStatus | None,
    workflow_name: str | None,
    limit: int,
    cursor: str | None,
) -> RunPage:
    """Filter, sort newest first and cut one page after ``cursor`` (``created_at|run_id``)."""
    check_limit(limit)
    status = RunStatus(status) if status is not None else None
    before = parse_cursor(cursor)
    selected = sorted(
        (
            r
            for r in runs
            if (status is None or r.status == status)
            and (workflow_name is None or r.workflow_name == workflow_name)
        ),
        key=sort_key,
        reverse=True,
    )
    if before is not None:
        selected = [r for r in selected if sort_key(r) < before]
    return cut_page(selected, limit)
