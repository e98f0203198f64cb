"""Live pages over server-sent events: one stream per open page.

A run's page follows its log with ``follow_events``, the loop of ``pyworkflow events
--follow``, and sends the page's parts again after each batch of new events; the stream
ends (an ``end`` event, then the response closes) with the run's last event. The list
reads its page every ``interval`` and sends it when a run on it or the counts changed.
A closed tab is a disconnect: sse-starlette cancels the generator, which frees the
stream (``Context.streams`` counts the open ones).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from .._follow import follow_events
from ._context import SECURITY_HEADERS, Context
from ._pages import runs_counts
from ._security import csrf_cookie, csrf_token
from ._views import RunsQuery, load_run, load_runs

__all__ = ["live_run", "live_runs"]

_PING = 15.0
_SEND_TIMEOUT = 30.0  # a client that reads nothing for this long is dropped


@asynccontextmanager
async def _counted(ctx: Context) -> AsyncIterator[None]:
    ctx.streams += 1
    try:
        yield
    finally:
        ctx.streams -= 1


def _response(stream: AsyncIterator[ServerSentEvent]) -> Response:
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "cache-control"}
    return EventSourceResponse(stream, headers=headers, ping=_PING, send_timeout=_SEND_TIMEOUT)


async def live_run(ctx: Context, request: Request) -> Response:
    run_id: str = request.path_params["run_id"]
    try:
        after = max(int(request.query_params.get("after", "0")), 0)
    except ValueError:
        after = 0
    csrf = csrf_token(ctx.options.secret, csrf_cookie(request))
    storage, interval = ctx.options.storage, ctx.options.interval

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with _counted(ctx):
            async for batch in follow_events(storage, run_id, after=after, interval=interval):
                view = await load_run(storage, run_id, ctx.now())
                if view is None:
                    break
                parts = {"view": view, "csrf": csrf, "form_error": ""}
                yield ServerSentEvent(ctx.render("_run_live.html", **parts), event="run")
                actions = ctx.render("_run_actions.html", **parts)
                yield ServerSentEvent(actions, event="actions", id=str(batch[-1].sequence))
            yield ServerSentEvent("", event="end")

    return _response(stream())


async def live_runs(ctx: Context, request: Request) -> Response:
    options = ctx.options
    query = RunsQuery.parse(request.query_params, default=options.page_size, most=options.max_page)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        last = ""
        async with _counted(ctx):
            while True:
                view = await load_runs(options.storage, query)
                counts = runs_counts(ctx)
                shown = [(r.run_id, r.status, r.last_sequence) for r in view.runs]
                key = repr((shown, counts["counts"], view.note))
                if key != last:
                    last = key
                    html = ctx.render("_runs_live.html", query=query, view=view, **counts)
                    yield ServerSentEvent(html, event="runs")
                await anyio.sleep(options.interval)

    return _response(stream())
